import type { Knex } from 'knex';
import pg from 'pg';
import type { Logger } from 'pino';
import type { LiveEvent } from './live-event.js';

export const EVENTS_CHANNEL = 'certctl_live_events';
/** NOTIFY payloads are capped at 8000 bytes by PostgreSQL; events are far smaller, but stay safe. */
const MAX_PAYLOAD = 7500;
/** Events waiting to be NOTIFYed; past this, other replicas miss pushes (their clients refetch on reconnect). */
const MAX_QUEUED = 50_000;

/**
 * Cross-replica fan-out with LISTEN/NOTIFY. One dedicated connection listens
 * (outside the knex pool, so it never starves queries); NOTIFY goes through the
 * pool. Messages carry the sending replica's id so it skips its own echo.
 * The listener reconnects with backoff: a lost connection only pauses fan-out.
 */
export class PgFanout {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs = 500;
  private pending: Promise<unknown> = Promise.resolve();
  private queue: LiveEvent[] = [];
  private flushScheduled = false;
  private droppedSinceWarn = 0;

  constructor(private readonly deps: { knex: Knex; replicaId: string; log: Logger; deliver: (e: LiveEvent) => void }) {}

  /** The pool's own connection settings (knex keeps them parsed), for one extra, unpooled client. */
  private clientConfig(): pg.ClientConfig {
    const client = this.deps.knex.client as { connectionSettings?: unknown; config: { connection: unknown } };
    const conn = client.connectionSettings ?? client.config.connection;
    if (typeof conn === 'string') return { connectionString: conn };
    if (conn && typeof conn === 'object') return conn as pg.ClientConfig;
    throw new Error('live event fan-out needs the PostgreSQL connection settings');
  }

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let client: pg.Client;
    try {
      client = new pg.Client(this.clientConfig());
    } catch (err) {
      this.deps.log.error({ err: (err as Error).message }, 'live events will not fan out across replicas');
      return;
    }
    client.on('error', (err) => {
      this.deps.log.warn({ err: err.message }, 'live event listener connection lost; reconnecting');
      this.reconnectLater(client);
    });
    client.on('end', () => this.reconnectLater(client));
    client.on('notification', (msg) => this.onNotification(msg.payload));
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      this.client = client;
      this.backoffMs = 500;
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'cannot LISTEN for live events; retrying');
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      this.reconnectLater(null);
    }
  }

  private reconnectLater(from: pg.Client | null): void {
    if (this.stopped || (from && from !== this.client) || this.retryTimer) return;
    this.client = null;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 15_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  private onNotification(payload: string | undefined): void {
    if (!payload) return;
    try {
      const msg = JSON.parse(payload) as { r: string; es: LiveEvent[] };
      if (msg.r === this.deps.replicaId || !Array.isArray(msg.es)) return;
      for (const e of msg.es) if (e && typeof e.topic === 'string') this.deps.deliver(e);
    } catch {
      this.deps.log.warn('ignored a malformed live event notification');
    }
  }

  /**
   * Queued and sent in batches (as many events as fit one NOTIFY payload), in
   * order: a burst of thousands of audit rows costs a handful of round trips. A
   * failed NOTIFY loses remote pushes, never the change itself.
   */
  publish(event: LiveEvent): void {
    if (this.stopped) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.droppedSinceWarn += 1;
      return;
    }
    this.queue.push(event);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.pending = this.pending.then(() => this.flush());
      });
    }
  }

  private async flush(): Promise<void> {
    if (this.droppedSinceWarn) {
      this.deps.log.warn({ dropped: this.droppedSinceWarn }, 'live event fan-out queue full; events dropped for other replicas');
      this.droppedSinceWarn = 0;
    }
    while (this.queue.length) {
      const batch: string[] = [];
      let size = 40;
      while (this.queue.length) {
        let json = JSON.stringify(this.queue[0]);
        if (json.length + 1 > MAX_PAYLOAD - 40) json = JSON.stringify({ ...this.queue[0], hints: {} });
        if (batch.length && size + json.length + 1 > MAX_PAYLOAD) break;
        batch.push(json);
        size += json.length + 1;
        this.queue.shift();
      }
      const payload = `{"r":${JSON.stringify(this.deps.replicaId)},"es":[${batch.join(',')}]}`;
      await this.deps.knex.raw('select pg_notify(?, ?)', [EVENTS_CHANNEL, payload])
        .catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'live event NOTIFY failed'));
    }
  }

  async stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await new Promise((r) => queueMicrotask(() => r(undefined)));
    await this.pending;
    this.stopped = true;
    const c = this.client;
    this.client = null;
    if (c) {
      c.removeAllListeners('end');
      await c.end().catch(() => {});
    }
  }
}
