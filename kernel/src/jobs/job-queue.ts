import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.js';
import { newId } from '../db/ids.js';
import type { JobRow, JobStatus, JobType } from './job-states.js';

export interface JobHandlerContext {
  signal: AbortSignal;
  log: Logger;
}

/** What a handler returns: done, or "not yet, look again later" (e.g. an async CA order). */
export type JobOutcome = { status: 'completed'; result?: Record<string, unknown> } | { status: 'retry_later'; delayMs: number; note?: string };

export type JobHandler = (job: JobRow, ctx: JobHandlerContext) => Promise<JobOutcome | void>;

export interface NewJob {
  type: JobType;
  status?: Extract<JobStatus, 'Pending' | 'AwaitingCSR' | 'AwaitingApproval'>;
  certificate_id?: string | null;
  target_id?: string | null;
  agent_id?: string | null;
  payload?: Record<string, unknown>;
  scheduled_at?: Date;
  max_attempts?: number;
  requested_by?: string | null;
  approval_expires_at?: Date | null;
}

export interface JobQueueOptions {
  replicaId: string;
  leaseMs: number;
  maxAttempts: number;
  concurrency: number;
  backoffBaseMs: number;
}

const SYSTEM_ACTOR = { actor: 'system', actor_type: 'system' } as const;

/**
 * The job queue. Workers claim Pending jobs with FOR UPDATE SKIP LOCKED and hold
 * them under a lease; a job whose lease runs out (its replica died) is put back
 * with backoff or failed when out of attempts. Only Pending is ever claimed, so
 * AwaitingApproval, AwaitingCSR and Cancelled jobs can never run by accident.
 */
export class JobQueue {
  private handlers = new Map<JobType, JobHandler>();
  private inFlight = new Map<string, Promise<void>>();
  private wakeListeners = new Set<() => void>();
  private readonly abort = new AbortController();

  constructor(private readonly knex: Knex, private readonly audit: AuditLog, private readonly log: Logger, readonly opts: JobQueueOptions) {}

  registerHandler(type: JobType, handler: JobHandler): void {
    if (this.handlers.has(type)) throw new Error(`A handler for ${type} jobs is already registered`);
    this.handlers.set(type, handler);
  }

  handledTypes(): JobType[] {
    return [...this.handlers.keys()];
  }

  onWake(fn: () => void): () => void {
    this.wakeListeners.add(fn);
    return () => this.wakeListeners.delete(fn);
  }

  /** Inserts jobs (in the caller's transaction when given) and records job_created. */
  async enqueue(jobs: NewJob | NewJob[], opts: { trx?: Knex.Transaction; actor?: { actor: string; actor_type: string } } = {}): Promise<JobRow[]> {
    const list = Array.isArray(jobs) ? jobs : [jobs];
    if (!list.length) return [];
    const rows = list.map((j) => ({
      id: newId('job'),
      type: j.type,
      status: j.status ?? 'Pending',
      certificate_id: j.certificate_id ?? null,
      target_id: j.target_id ?? null,
      agent_id: j.agent_id ?? null,
      payload: JSON.stringify(j.payload ?? {}),
      scheduled_at: j.scheduled_at ?? new Date(),
      max_attempts: j.max_attempts ?? this.opts.maxAttempts,
      requested_by: j.requested_by ?? null,
      approval_expires_at: j.approval_expires_at ?? null,
    }));
    const run = async (trx: Knex.Transaction) => {
      const inserted: JobRow[] = [];
      for (let i = 0; i < rows.length; i += 500) inserted.push(...((await trx('jobs').insert(rows.slice(i, i + 500)).returning('*')) as JobRow[]));
      const actor = opts.actor ?? SYSTEM_ACTOR;
      await this.audit.append(inserted.map((j) => ({
        category: 'lifecycle' as const, ...actor, action: 'job_created', resource_type: 'job', resource_id: j.id,
        details: { type: j.type, status: j.status, certificate_id: j.certificate_id, target_id: j.target_id },
      })), trx);
      return inserted;
    };
    const created = opts.trx ? await run(opts.trx) : await this.knex.transaction(run);
    const wake = () => this.wakeListeners.forEach((fn) => fn());
    if (opts.trx) opts.trx.executionPromise.then(wake, () => {});
    else wake();
    return created;
  }

  /** Claims up to `limit` runnable jobs of the types this replica can handle. */
  async claim(limit: number, types: JobType[] = this.handledTypes()): Promise<JobRow[]> {
    if (limit <= 0 || types.length === 0) return [];
    const res = await this.knex.raw(
      `UPDATE jobs SET status = 'Running', lease_owner = ?, lease_expires_at = now() + (? * interval '1 millisecond'),
              attempts = attempts + 1, started_at = coalesce(started_at, now()), updated_at = now()
        WHERE status = 'Pending' AND id IN (
          SELECT id FROM jobs
           WHERE status = 'Pending' AND scheduled_at <= now() AND type = ANY(?)
           ORDER BY scheduled_at, id
           LIMIT ? FOR UPDATE SKIP LOCKED)
        RETURNING *`,
      [this.opts.replicaId, this.opts.leaseMs, types, limit],
    );
    return (res.rows ?? res) as JobRow[];
  }

  /** Marks a claimed job done; a no-op (false) if this replica no longer holds its lease. */
  async complete(job: JobRow, result: Record<string, unknown> = {}): Promise<boolean> {
    return this.knex.transaction(async (trx) => {
      const n = await trx('jobs')
        .where({ id: job.id, status: 'Running', lease_owner: this.opts.replicaId })
        .update({ status: 'Completed', result: JSON.stringify(result), completed_at: trx.fn.now(), lease_owner: null, lease_expires_at: null, last_error: null, updated_at: trx.fn.now() });
      if (n === 1) {
        await this.audit.append({ category: 'lifecycle', ...SYSTEM_ACTOR, action: 'job_completed', resource_type: 'job', resource_id: job.id, details: { type: job.type, attempts: job.attempts, replica: this.opts.replicaId } }, trx);
      }
      return n === 1;
    });
  }

  /** Puts a claimed job back for a later look without spending an attempt. */
  async reschedule(job: JobRow, delayMs: number, note?: string): Promise<boolean> {
    const n = await this.knex('jobs')
      .where({ id: job.id, status: 'Running', lease_owner: this.opts.replicaId })
      .update({
        status: 'Pending', attempts: Math.max(0, job.attempts - 1), scheduled_at: new Date(Date.now() + delayMs),
        lease_owner: null, lease_expires_at: null, last_error: note ?? null, updated_at: this.knex.fn.now(),
      });
    return n === 1;
  }

  /** Records a failed attempt: back to Pending with exponential backoff, or Failed when out of attempts. */
  async fail(job: JobRow, error: string, opts: { retryable?: boolean } = {}): Promise<JobStatus | null> {
    return this.knex.transaction(async (trx) => {
      const finalFailure = opts.retryable === false || job.attempts >= job.max_attempts;
      const status: JobStatus = finalFailure ? 'Failed' : 'Pending';
      const n = await trx('jobs')
        .where({ id: job.id, status: 'Running', lease_owner: this.opts.replicaId })
        .update({
          status, last_error: error.slice(0, 2000), lease_owner: null, lease_expires_at: null, updated_at: trx.fn.now(),
          ...(finalFailure ? { completed_at: trx.fn.now() } : { scheduled_at: new Date(Date.now() + this.backoffMs(job.attempts)) }),
        });
      if (n !== 1) return null;
      await this.audit.append({
        category: 'lifecycle', ...SYSTEM_ACTOR, action: finalFailure ? 'job_failed' : 'job_retry_scheduled', resource_type: 'job', resource_id: job.id,
        details: { type: job.type, attempts: job.attempts, error: error.slice(0, 500) },
      }, trx);
      return status;
    });
  }

  /** 2^(attempt-1) x base with +-20% jitter, capped at one hour. */
  backoffMs(attempt: number): number {
    const base = Math.min(3_600_000, this.opts.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /**
   * Reclaims jobs whose lease expired (their replica died or hung): retried with
   * backoff, or Failed when out of attempts. Cancels approvals that timed out.
   */
  async reap(): Promise<{ requeued: number; failed: number; approvalsExpired: number }> {
    return this.knex.transaction(async (trx) => {
      const expired = (await trx.raw(
        `SELECT id, type, attempts, max_attempts, lease_owner FROM jobs
          WHERE status = 'Running' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED`,
      )).rows as Pick<JobRow, 'id' | 'type' | 'attempts' | 'max_attempts' | 'lease_owner'>[];
      let requeued = 0;
      let failed = 0;
      for (const j of expired) {
        const out = j.attempts >= j.max_attempts;
        await trx('jobs').where({ id: j.id }).update({
          status: out ? 'Failed' : 'Pending', last_error: `lease held by ${j.lease_owner} expired`, lease_owner: null, lease_expires_at: null,
          updated_at: trx.fn.now(), ...(out ? { completed_at: trx.fn.now() } : { scheduled_at: new Date(Date.now() + this.backoffMs(j.attempts)) }),
        });
        if (out) failed++;
        else requeued++;
      }
      const timedOut = (await trx('jobs')
        .where({ status: 'AwaitingApproval' })
        .whereNotNull('approval_expires_at')
        .where('approval_expires_at', '<', trx.fn.now())
        .update({ status: 'Cancelled', last_error: 'approval timed out', completed_at: trx.fn.now(), updated_at: trx.fn.now() })
        .returning(['id', 'type'])) as { id: string; type: string }[];
      const events = [
        ...expired.map((j) => ({ category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: j.attempts >= j.max_attempts ? 'job_failed' : 'job_lease_expired', resource_type: 'job', resource_id: j.id, details: { lease_owner: j.lease_owner, attempts: j.attempts } })),
        ...timedOut.map((j) => ({ category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'job_cancelled', resource_type: 'job', resource_id: j.id, details: { reason: 'approval_timeout' } })),
      ];
      if (events.length) await this.audit.append(events, trx);
      return { requeued, failed, approvalsExpired: timedOut.length };
    });
  }

  /**
   * Claims and runs jobs until none are runnable or the queue is stopping,
   * keeping at most `concurrency` in flight and renewing leases while they run.
   */
  async drainOnce(): Promise<number> {
    let ran = 0;
    while (!this.abort.signal.aborted) {
      const free = this.opts.concurrency - this.inFlight.size;
      if (free <= 0) {
        await Promise.race(this.inFlight.values());
        continue;
      }
      const jobs = await this.claim(free);
      if (jobs.length === 0) break;
      for (const job of jobs) {
        ran++;
        const p = this.run(job).finally(() => this.inFlight.delete(job.id));
        this.inFlight.set(job.id, p);
      }
    }
    await Promise.all(this.inFlight.values());
    return ran;
  }

  private async run(job: JobRow): Promise<void> {
    const handler = this.handlers.get(job.type);
    const log = this.log.child({ job_id: job.id, job_type: job.type });
    const renew = setInterval(() => {
      void this.knex('jobs').where({ id: job.id, status: 'Running', lease_owner: this.opts.replicaId })
        .update({ lease_expires_at: this.knex.raw(`now() + (? * interval '1 millisecond')`, [this.opts.leaseMs]) })
        .catch((err: unknown) => log.warn({ err }, 'lease renewal failed'));
    }, Math.max(1000, Math.floor(this.opts.leaseMs / 3)));
    try {
      if (!handler) throw new Error(`no handler for ${job.type} jobs on this replica`);
      const outcome = await handler(job, { signal: this.abort.signal, log });
      if (outcome && outcome.status === 'retry_later') await this.reschedule(job, outcome.delayMs, outcome.note);
      else await this.complete(job, outcome?.result);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log.warn({ err: message }, 'job attempt failed');
      await this.fail(job, message, { retryable: (err as { retryable?: boolean })?.retryable }).catch((e: unknown) => log.error({ err: e }, 'could not record job failure'));
    } finally {
      clearInterval(renew);
    }
  }

  /** Stops claiming and waits (bounded) for running jobs; unfinished ones keep their lease and are reaped later. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.abort.abort();
    const all = Promise.all(this.inFlight.values()).then(() => true);
    const timer = new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref());
    return Promise.race([all, timer]);
  }
}
