import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { LOCK_KEYS } from '../db/database.js';
import { newId } from '../db/ids.js';
import { rowsOf } from '../db/raw-rows.js';
import type { Principal } from '../auth/principal.js';
import { GENESIS_HASH, HASHED_COLUMNS, hashAuditRecord, hashedColumns, hashedValues, type AuditRecord, type ChainCheck } from './chain.js';

export type AuditInput = Omit<AuditRecord, 'seq' | 'id' | 'occurred_at' | 'prev_hash' | 'method' | 'path' | 'status_code' | 'latency_ms' | 'body_sha256' | 'request_id' | 'resource_type' | 'resource_id' | 'details'> & {
  occurred_at?: Date;
  resource_type?: string;
  resource_id?: string;
  method?: string | null;
  path?: string | null;
  status_code?: number | null;
  latency_ms?: number | null;
  body_sha256?: string | null;
  request_id?: string | null;
  details?: Record<string, unknown>;
};

/** Who an audit row names: the caller, or the kernel itself. */
export interface AuditActor {
  actor: string;
  actor_type: string;
}

export const SYSTEM_ACTOR: AuditActor = { actor: 'system', actor_type: 'system' };

export const actorOf = (p: Principal | null | undefined): AuditActor => (p ? { actor: p.actor, actor_type: p.actorType } : SYSTEM_ACTOR);

export type AuditListener = (rows: AuditRecord[]) => void;

/**
 * The append-only, hash-chained audit trail. Every append takes a transaction-scoped
 * advisory lock, reads the chain head and links the new rows to it, so appends from
 * several replicas serialise into one chain; the database does all three in one call
 * (migration 019), so the lock is held for that call and the commit only. Lifecycle events are appended inside
 * the caller's transaction (they commit or vanish with the change they describe);
 * API-call rows are queued and written in batches off the request path.
 */
export class AuditLog {
  private queue: AuditInput[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private listeners = new Set<AuditListener>();

  constructor(private readonly knex: Knex, private readonly log: Logger, private readonly opts = { batchMs: 100, batchMax: 500 }) {}

  onAppend(fn: AuditListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Appends in the given transaction (or a new one). */
  async append(events: AuditInput | AuditInput[], trx?: Knex.Transaction): Promise<AuditRecord[]> {
    const list = Array.isArray(events) ? events : [events];
    if (list.length === 0) return [];
    const pending = list.map((e): Omit<AuditRecord, 'seq' | 'prev_hash'> => ({
      id: newId('audit'),
      // Millisecond precision survives the timestamptz round trip exactly.
      occurred_at: new Date((e.occurred_at ?? new Date()).getTime()),
      category: e.category,
      actor: e.actor,
      actor_type: e.actor_type,
      action: e.action,
      resource_type: e.resource_type ?? '',
      resource_id: e.resource_id ?? '',
      method: e.method ?? null,
      path: e.path ?? null,
      status_code: e.status_code ?? null,
      latency_ms: e.latency_ms ?? null,
      body_sha256: e.body_sha256 ?? null,
      request_id: e.request_id ?? null,
      details: e.details ?? {},
    }));
    // The database takes the chain's lock, reads the head, links and inserts the rows (migration 019): one round trip.
    const values = pending.map(hashedValues);
    const run = async (t: Knex.Transaction) => {
      const linked = rowsOf<{ seq: number | string; prev_hash: string; hash: string }>(await t.raw(APPEND, [
        LOCK_KEYS.auditChain,
        // One array per column (jsonb travels as its JSON text), then each row's hashed columns as canonical JSON.
        ...HASHED_COLUMNS.map(([, type], j) => values.map((v) => (type === 'jsonb' ? JSON.stringify(v[j]) : v[j]))),
        values.map(hashedColumns),
      ] as unknown as Knex.RawBinding[]).options({ name: 'certctl_audit_append' }));
      if (linked.length !== pending.length) throw new Error(`the audit append linked ${linked.length} of ${pending.length} rows`);
      return pending.map((r, i) => ({ ...r, seq: Number(linked[i].seq), prev_hash: linked[i].prev_hash, hash: linked[i].hash }));
    };
    const rows = trx ? await run(trx) : await this.knex.transaction(run);
    if (this.listeners.size) {
      const notify = () => this.listeners.forEach((fn) => fn(rows));
      if (trx) trx.executionPromise.then(notify, () => {});
      else notify();
    }
    return rows;
  }

  /** Queues an API-call row; written within batchMs. Never throws into the request. */
  enqueue(event: AuditInput): void {
    this.queue.push({ ...event, occurred_at: event.occurred_at ?? new Date() });
    if (this.queue.length >= this.opts.batchMax) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.opts.batchMs);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.flushing) await this.flushing;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.flushing = this.append(batch)
      .then(() => undefined)
      .catch((err: unknown) => {
        // Keep the rows for the next flush rather than lose them.
        this.queue.unshift(...batch);
        this.log.error({ err, rows: batch.length }, 'audit batch write failed; will retry');
        if (!this.timer) {
          this.timer = setTimeout(() => void this.flush(), 1000);
          this.timer.unref();
        }
      })
      .finally(() => {
        this.flushing = null;
      });
    await this.flushing;
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.queue.length) await this.flush();
  }

  /** Re-computes every hash and link from the first row (or from `fromSeq`), in pages. */
  async verify(opts: { fromSeq?: number; pageSize?: number } = {}): Promise<ChainCheck> {
    const pageSize = opts.pageSize ?? 5000;
    let after = (opts.fromSeq ?? 1) - 1;
    let prev: string | null = null;
    if (after > 0) {
      const row = (await this.knex('audit_events').where('seq', after).select('hash').first()) as { hash: string } | undefined;
      if (!row) {
        // Without the anchor row the first link cannot be checked: that is a break, not a pass.
        const next = (await this.knex('audit_events').where('seq', '>', after).orderBy('seq').select('seq', 'id').first()) as { seq: number; id: string } | undefined;
        return { valid: false, checked: 0, last_seq: null, head_hash: null, broken_at: { seq: next?.seq ?? after, id: next?.id ?? '', reason: 'sequence_gap' } };
      }
      prev = row.hash;
    }
    let checked = 0;
    let last: { seq: number; hash: string } | null = null;
    for (;;) {
      const rows = (await this.knex('audit_events').where('seq', '>', after).orderBy('seq').limit(pageSize)) as (AuditRecord & { hash: string })[];
      if (rows.length === 0) break;
      for (const r of rows) {
        const expectedSeq = after + 1;
        const expectedPrev = prev ?? GENESIS_HASH;
        if (r.seq !== expectedSeq) return { valid: false, checked, last_seq: last?.seq ?? null, head_hash: last?.hash ?? null, broken_at: { seq: r.seq, id: r.id, reason: 'sequence_gap' } };
        if (r.prev_hash !== expectedPrev) return { valid: false, checked, last_seq: last?.seq ?? null, head_hash: last?.hash ?? null, broken_at: { seq: r.seq, id: r.id, reason: 'prev_hash_mismatch' } };
        if (hashAuditRecord(r) !== r.hash) return { valid: false, checked, last_seq: last?.seq ?? null, head_hash: last?.hash ?? null, broken_at: { seq: r.seq, id: r.id, reason: 'hash_mismatch' } };
        prev = r.hash;
        after = r.seq;
        last = { seq: r.seq, hash: r.hash };
        checked += 1;
      }
    }
    return { valid: true, checked, last_seq: last?.seq ?? null, head_hash: last?.hash ?? null };
  }
}

export const sha256Hex = (buf: Buffer | string) => crypto.createHash('sha256').update(buf).digest('hex');

/** One statement text for any number of rows (arrays): named, so PostgreSQL parses it once per connection. */
const APPEND = `SELECT seq, prev_hash, hash FROM certctl_audit_append(?::bigint, ${HASHED_COLUMNS.map(([, type]) => `?::${type === 'jsonb' ? 'text' : type}[]`).join(', ')}, ?::text[])`;
