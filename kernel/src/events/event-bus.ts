import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.js';
import type { Database } from '../db/database.js';
import { eventFromAudit, type LiveEvent } from './live-event.js';
import { PgFanout } from './pg-fanout.js';

export type EventListener = (event: LiveEvent) => void;

/**
 * The in-process live event bus. It is fed by audit appends (every lifecycle
 * change, job state changes included, is audited inside its transaction and
 * reported after commit). On PostgreSQL each replica also publishes what it
 * saw with NOTIFY and relays what the others saw, so a dashboard connected to
 * any replica sees every change. PGlite is one process: local delivery only.
 */
export class EventBus {
  private listeners = new Set<EventListener>();
  private detach: (() => void) | null = null;
  private fanout: PgFanout | null = null;

  constructor(private readonly deps: { audit: AuditLog; db: Database; replicaId: string; log: Logger }) {}

  async start(): Promise<void> {
    if (this.deps.db.dialect === 'postgres') {
      this.fanout = new PgFanout({ knex: this.deps.db.knex, replicaId: this.deps.replicaId, log: this.deps.log, deliver: (e) => this.emitLocal(e) });
      await this.fanout.start();
    }
    this.detach = this.deps.audit.onAppend((rows) => {
      for (const row of rows) {
        const event = eventFromAudit(row);
        if (!event) continue;
        this.emitLocal(event);
        this.fanout?.publish(event);
      }
    });
  }

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  private emitLocal(event: LiveEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(event);
      } catch (err) {
        this.deps.log.warn({ err }, 'live event listener failed');
      }
    }
  }

  async stop(): Promise<void> {
    this.detach?.();
    this.detach = null;
    await this.fanout?.stop();
    this.fanout = null;
    this.listeners.clear();
  }
}
