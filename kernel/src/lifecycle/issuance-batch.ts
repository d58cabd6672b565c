import type { Knex } from 'knex';
import type { AuditActor } from '../audit/audit-log.js';
import { rowsOf } from '../db/raw-rows.js';
import type { KernelServices } from '../kernel-services.js';
import { IssuanceError } from './issuance-failure.js';
import { storeIssued, type IssuedRecord, type StoredIssuance } from './issuance-store.js';

/**
 * The job lease a store is fenced on: the record is stored only if its job is
 * still Running under this owner and attempt (a replica that lost the job, say
 * after a long pause, must not store alongside the one that took it over).
 */
export interface StoreLease {
  jobId: string;
  owner: string;
  attempts: number;
}

interface Waiting {
  record: IssuedRecord;
  actor: AuditActor;
  lease: StoreLease | undefined;
  resolve: (stored: StoredIssuance) => void;
  reject: (err: unknown) => void;
}

const leaseLost = (lease: StoreLease) => new IssuanceError(`job ${lease.jobId} is no longer held by this replica; not storing`, true);

/**
 * The records among `items` whose job lease is no longer held, with one statement
 * for the whole batch; the jobs still held are locked until the store commits.
 */
async function lostLeases(trx: Knex.Transaction, items: readonly Waiting[]): Promise<Waiting[]> {
  const leased = items.filter((w) => w.lease);
  if (!leased.length) return [];
  const leases = leased.map((w) => w.lease!);
  const jobIds = leases.map((l) => l.jobId);
  const key = (l: StoreLease) => JSON.stringify([l.jobId, l.owner, l.attempts]);
  const held = new Set(rowsOf<{ id: string; lease_owner: string; attempts: number }>(await trx.raw(
    `SELECT j.id, j.lease_owner, j.attempts FROM jobs j
      WHERE j.id = ANY(?::text[]) AND j.status = 'Running'
        AND (j.id, j.lease_owner, j.attempts) IN (SELECT * FROM unnest(?::text[], ?::text[], ?::int[]))
      ORDER BY j.id FOR UPDATE`,
    [jobIds, jobIds, leases.map((l) => l.owner), leases.map((l) => l.attempts)] as unknown as Knex.RawBinding[],
  ).options({ name: 'certctl_store_leases' })).map((r) => key({ jobId: r.id, owner: r.lease_owner, attempts: Number(r.attempts) })));
  // The whole lease must match, not just the job: two records of one job with different attempts get one answer each.
  return leased.filter((w) => !held.has(key(w.lease!)));
}

type StoreServices = Pick<KernelServices, 'db' | 'log' | 'audit' | 'config'>;

/** Most records one transaction stores (bounds its statements' parameter arrays and its lock time). */
export const MAX_BATCH = 256;
/**
 * How long a store that starts from an idle queue waits for issuances still under way before it
 * writes (only while there are some; records that arrived during a write go as soon as it ends,
 * since they had the whole write to gather). A transaction costs ~2.7 ms of PostgreSQL and more of the kernel whatever its size,
 * against ~0.05 ms per record, and batches formed only of what finished during the previous
 * commit held ~7 records at concurrency 32: waiting a moment makes them larger and each
 * certificate cheaper (docs/benchmarks.md), for at most this much latency.
 */
export const COALESCE_MS = 4;

/**
 * Group commit for issued certificates. Every stored certificate needs its audit
 * event in the same transaction, and every audit append serialises on the
 * chain's lock until commit, so one transaction per certificate caps a database
 * at one certificate per commit (a flush to disk on a durable PostgreSQL). Here
 * concurrent issuances that finish while a store is committing wait for it and
 * are then written together: one transaction, one storeIssued (one statement for
 * versions, certificates and deployment jobs) and one audit append per batch.
 * A store from an idle queue also waits up to COALESCE_MS for issuances still
 * under way (expect()), so that a burst is not split at its first arrival.
 *
 * Guarantees kept per record: the job leases of a batch are checked in its
 * transaction by one statement, and a record whose lease was lost is rejected
 * alone while the others are stored; a batch whose store fails is retried
 * record by record, each in its own transaction, so one bad record (a second
 * version for a job, or a certificate revoked or archived meanwhile, which
 * storeIssued refuses) cannot lose or fail its neighbours. Two records for the
 * same certificate never share a batch (the later one waits for the next), so the
 * certificate row ends at the last version stored. A crash loses only uncommitted
 * work, which the jobs retry (a version carries its job id, unique).
 */
export class IssuanceStoreQueue {
  private waiting: Waiting[] = [];
  private running = false;
  /** Issuances under way that have not stored yet (expect()). */
  private coming = 0;
  private wake: (() => void) | null = null;

  constructor(private readonly k: StoreServices, private readonly maxBatch = MAX_BATCH, private readonly coalesceMs = COALESCE_MS) {}

  /**
   * Counts an issuance under way until the returned function is called (once it
   * has handed its record to store(), or failed): stores wait a moment for it.
   */
  expect(): () => void {
    this.coming += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.coming -= 1;
      this.wake?.();
    };
  }

  store(record: IssuedRecord, actor: AuditActor, lease?: StoreLease): Promise<StoredIssuance> {
    return new Promise<StoredIssuance>((resolve, reject) => {
      this.waiting.push({ record, actor, lease, resolve, reject });
      if (!this.running) void this.next();
      else this.wake?.();
    });
  }

  /** Waits (up to coalesceMs) while issuances are still under way and the batch has room. */
  private async gather(): Promise<void> {
    const until = Date.now() + this.coalesceMs;
    while (this.coming > 0 && this.waiting.length < this.maxBatch) {
      const left = until - Date.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /**
   * Writes the next batch. One writer: a second one on another connection was
   * measured slower (smaller batches cost PostgreSQL more per certificate, and
   * both wait on the audit chain's lock anyway). Records that arrived during a
   * write go as soon as it ends; a queue woken from idle waits a moment for company.
   */
  private async next(afterWrite = false): Promise<void> {
    if (this.running || !this.waiting.length) return;
    this.running = true;
    try {
      if (!afterWrite) await this.gather();
      await this.write(this.take());
    } finally {
      this.running = false;
    }
    void this.next(true);
  }

  /** The oldest waiting records, at most one per certificate and maxBatch in all. */
  private take(): Waiting[] {
    const batch: Waiting[] = [];
    const rest: Waiting[] = [];
    const certs = new Set<string>();
    for (const w of this.waiting) {
      if (batch.length < this.maxBatch && !certs.has(w.record.certificateId)) {
        certs.add(w.record.certificateId);
        batch.push(w);
      } else rest.push(w);
    }
    this.waiting = rest;
    return batch;
  }

  private async write(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return this.writeAlone(batch[0]);
    let results: Map<Waiting, StoredIssuance>;
    const refused = new Map<Waiting, unknown>();
    try {
      results = await this.k.db.knex.transaction(async (trx) => {
        const lost = await lostLeases(trx, batch);
        for (const w of lost) refused.set(w, leaseLost(w.lease!));
        return this.storeAll(trx, lost.length ? batch.filter((w) => !refused.has(w)) : batch);
      });
    } catch (err) {
      this.k.log.warn({ err: (err as Error)?.message ?? String(err), records: batch.length }, 'batched certificate store failed; storing one by one');
      for (const w of batch) await this.writeAlone(w);
      return;
    }
    for (const w of batch) {
      const stored = results.get(w);
      if (stored) w.resolve(stored);
      else w.reject(refused.get(w));
    }
  }

  private async writeAlone(w: Waiting): Promise<void> {
    try {
      const stored = await this.k.db.knex.transaction(async (trx) => {
        if ((await lostLeases(trx, [w])).length) throw leaseLost(w.lease!);
        return this.storeAll(trx, [w]);
      });
      w.resolve(stored.get(w)!);
    } catch (err) {
      w.reject(err);
    }
  }

  /** One storeIssued per actor (the audit rows and deployment jobs name it); nearly always one. */
  private async storeAll(trx: Knex.Transaction, items: Waiting[]): Promise<Map<Waiting, StoredIssuance>> {
    const out = new Map<Waiting, StoredIssuance>();
    const byActor = new Map<string, Waiting[]>();
    for (const w of items) {
      const key = `${w.actor.actor_type}\0${w.actor.actor}`;
      const group = byActor.get(key);
      if (group) group.push(w);
      else byActor.set(key, [w]);
    }
    for (const group of byActor.values()) {
      const stored = await storeIssued(this.k, trx, group.map((w) => w.record), { actor: group[0].actor, now: new Date() });
      group.forEach((w, i) => out.set(w, stored[i]));
    }
    return out;
  }
}

/** One queue per database handle (a kernel), made on first use. */
const queues = new WeakMap<Knex, IssuanceStoreQueue>();

export function issuanceStoreQueue(k: StoreServices): IssuanceStoreQueue {
  let q = queues.get(k.db.knex);
  if (!q) {
    q = new IssuanceStoreQueue(k);
    queues.set(k.db.knex, q);
  }
  return q;
}
