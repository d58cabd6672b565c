import type { Knex } from 'knex';
import pg from 'pg';
import type { Logger } from 'pino';
import type { LiveEvent } from './live-event.js';

export const EVENTS_CHANNEL = 'certctl_live_events';
/** NOTIFY payloads are capped at 8000 bytes by PostgreSQL; events are far smaller, but stay safe. */
const MAX_PAYLOAD = 7500;

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
      const msg = JSON.parse(payload) as { r: string; e: LiveEvent };
      if (msg.r === this.deps.replicaId || !msg.e || typeof msg.e.topic !== 'string') return;
      this.deps.deliver(msg.e);
    } catch {
      this.deps.log.warn('ignored a malformed live event notification');
    }
  }

  /** Fire and forget, in order: a failed NOTIFY loses one remote push, never the change itself. */
  publish(event: LiveEvent): void {
    if (this.stopped) return;
    let payload = JSON.stringify({ r: this.deps.replicaId, e: event });
    if (Buffer.byteLength(payload) > MAX_PAYLOAD) payload = JSON.stringify({ r: this.deps.replicaId, e: { ...event, hints: {} } });
    this.pending = this.pending
      .then(() => this.deps.knex.raw('select pg_notify(?, ?)', [EVENTS_CHANNEL, payload]))
      .catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'live event NOTIFY failed'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.pending;
    const c = this.client;
    this.client = null;
    if (c) {
      c.removeAllListeners('end');
      await c.end().catch(() => {});
    }
  }
}
