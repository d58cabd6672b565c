import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { AuditInput, AuditLog } from '../audit/audit-log.js';
import { newId } from '../db/ids.js';
import { rowsOf } from '../db/raw-rows.js';
import { CANCELLABLE_JOB_STATUSES, type JobRow, type JobStatus, type JobType } from './job-states.js';
import { SYSTEM_ACTOR, type AuditActor } from '../audit/audit-log.js';
import { closeJobApprovals } from '../approvals/approval-requests.js';
import { expireApprovals, expireJobApprovals } from '../approvals/approval-expiry.js';
import { KEY_LINEAGE_SQL, sameKeyLineage } from '../auth/key-lineage.js';
import { notifyAbandonedDeployments } from '../resources/agents/agent-lease-expiry.js';

export interface JobHandlerContext {
  /** Aborted when this replica lost the job's lease, or when shutdown's bound ran out. */
  signal: AbortSignal;
  log: Logger;
}

/** What a handler returns: done, or "not yet, look again later" (e.g. an async CA order). */
export type JobOutcome = { status: 'completed'; result?: Record<string, unknown> } | { status: 'retry_later'; delayMs: number; note?: string };

/**
 * Runs one attempt of a job. Returning (or returning nothing) completes it. Throwing
 * fails the attempt: retried with backoff until max_attempts, or failed at once when
 * the error carries `retryable: false` (a bad CSR will not get better).
 */
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
  /** Defaults to now + approvalTimeoutMs for AwaitingApproval jobs when that option is set. */
  approval_expires_at?: Date | null;
}

export interface JobQueueOptions {
  replicaId: string;
  leaseMs: number;
  maxAttempts: number;
  concurrency: number;
  backoffBaseMs: number;
  approvalTimeoutMs?: number;
}

export type Actor = AuditActor;

/** Why an operator action on a job was refused; the caller maps it to its API error. */
export type JobActionResult =
  | { ok: true; job: JobRow }
  | { ok: false; reason: 'not_found' | 'wrong_status' | 'approval_expired' | 'same_actor'; job?: JobRow };

const BACKOFF_CAP_MS = 3_600_000;

/**
 * SQL for "now + backoff": 2^(attempt-1) x base, capped at an hour, with +-20% jitter
 * so a burst of failures does not come back in step. One definition for fail and reap.
 */
const retryAt = (attemptsSql: string) =>
  `now() + (least(${BACKOFF_CAP_MS}, ?::float8 * power(2, greatest(0, ${attemptsSql} - 1))) * (0.8 + random() * 0.4)) * interval '1 millisecond'`;

interface PendingCompletion {
  job: JobRow;
  result: Record<string, unknown>;
  resolve: (held: boolean) => void;
  reject: (err: unknown) => void;
}

const COMPLETION_BATCH = 200;

interface RunningJob {
  job: JobRow;
  controller: AbortController;
  done: Promise<void>;
  /** The handler has returned; only its outcome is still being written. */
  handlerDone: boolean;
}

/**
 * The job queue. Workers claim Pending jobs with FOR UPDATE SKIP LOCKED and hold
 * them under a lease that one heartbeat per replica keeps renewing; a job whose lease
 * runs out (its replica died or hung) is put back with backoff, or failed when out of
 * attempts. Every write by a lease holder is fenced on (lease_owner, attempts), so a
 * replica that lost a job can no longer complete or fail it. Only Pending is ever
 * claimed: AwaitingApproval, AwaitingCSR and Cancelled jobs cannot run by accident.
 */
export class JobQueue {
  private handlers = new Map<JobType, JobHandler>();
  private running = new Map<string, RunningJob>();
  private drains = new Set<Promise<number>>();
  private wakeListeners = new Set<() => void>();
  private heartbeat: NodeJS.Timeout | null = null;
  private renewing = false;
  private completions: PendingCompletion[] = [];
  private completing: Promise<void> | null = null;
  private stopping = false;
  private readonly hardStop = new AbortController();

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

  /** Jobs this replica is running now. */
  get inFlight(): number {
    return this.running.size;
  }

  /** Inserts jobs (in the caller's transaction when given) and records job_created. */
  async enqueue(jobs: NewJob | NewJob[], opts: { trx?: Knex.Transaction; actor?: Actor } = {}): Promise<JobRow[]> {
    const list = Array.isArray(jobs) ? jobs : [jobs];
    if (!list.length) return [];
    const now = Date.now();
    const rows = list.map((j) => ({
      id: newId('job'),
      type: j.type,
      status: j.status ?? 'Pending',
      certificate_id: j.certificate_id ?? null,
      target_id: j.target_id ?? null,
      agent_id: j.agent_id ?? null,
      payload: JSON.stringify(j.payload ?? {}),
      // The database clock, as the claim compares with now(): replicas' clocks may drift.
      scheduled_at: j.scheduled_at ?? this.knex.fn.now(),
      max_attempts: j.max_attempts ?? this.opts.maxAttempts,
      requested_by: j.requested_by ?? null,
      approval_expires_at: j.approval_expires_at !== undefined ? j.approval_expires_at
        : j.status === 'AwaitingApproval' && this.opts.approvalTimeoutMs ? new Date(now + this.opts.approvalTimeoutMs) : null,
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
    if (created.some((j) => j.status === 'Pending')) this.afterCommit(opts.trx, () => this.wake());
    return created;
  }

  /** Claims up to `limit` runnable jobs of the given types (default: those this replica handles). */
  async claim(limit: number, types: JobType[] = this.handledTypes()): Promise<JobRow[]> {
    return this.claimFor({ limit, types, owner: this.opts.replicaId });
  }

  /**
   * The claim itself, for any lease owner: this replica's workers, or an agent
   * (owner `agent:<id>`, only jobs routed to it, inside the caller's transaction
   * so the lease commits with the rest of its poll). SKIP LOCKED, so concurrent
   * claims never hand out the same job; an attempt is spent and the lease runs
   * for the queue's lease time unless `leaseMs` says otherwise.
   */
  async claimFor(opts: { limit: number; types: readonly JobType[]; owner: string; agentId?: string; trx?: Knex.Transaction; leaseMs?: number }): Promise<JobRow[]> {
    if (opts.limit <= 0 || opts.types.length === 0) return [];
    const byAgent = opts.agentId !== undefined;
    // The CTE is never inlined (it locks rows), so LIMIT and SKIP LOCKED apply before the update.
    const res = await (opts.trx ?? this.knex).raw(
      `WITH next AS (
         SELECT id FROM jobs
          WHERE status = 'Pending' AND scheduled_at <= now() AND type = ANY(?)${byAgent ? ' AND agent_id = ?' : ''}
          ORDER BY scheduled_at, id
          LIMIT ? FOR UPDATE SKIP LOCKED)
       UPDATE jobs j SET status = 'Running', lease_owner = ?, lease_expires_at = now() + (? * interval '1 millisecond'),
              attempts = j.attempts + 1, started_at = coalesce(j.started_at, now()), updated_at = now()
         FROM next WHERE j.id = next.id AND j.status = 'Pending'
       RETURNING j.*`,
      [[...opts.types], ...(opts.agentId !== undefined ? [opts.agentId] : []), opts.limit, opts.owner, opts.leaseMs ?? this.opts.leaseMs],
    );
    return rowsOf<JobRow>(res);
  }

  /** The row filter for writes by the lease holder: a reaped and re-claimed job has more attempts. */
  private held(job: JobRow, owner = this.opts.replicaId) {
    return { id: job.id, status: 'Running', lease_owner: owner, attempts: job.attempts };
  }

  /**
   * Marks a claimed job done; a no-op (false) if this replica no longer holds its lease.
   * Completions are group-committed: while one batch is being written, the next ones
   * queue up and go together in one transaction (each with its job_completed event), so
   * a busy replica pays one commit and one audit-chain lock per batch, not per job.
   */
  complete(job: JobRow, result: Record<string, unknown> = {}): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.completions.push({ job, result, resolve, reject });
      this.completing ??= this.writeCompletions();
    });
  }

  private async writeCompletions(): Promise<void> {
    while (this.completions.length) {
      const batch = this.completions.splice(0, COMPLETION_BATCH);
      try {
        const done = await this.knex.transaction(async (trx) => {
          const updated = rowsOf<{ id: string }>(await trx.raw(
            `UPDATE jobs j SET status = 'Completed', result = v.result::jsonb, completed_at = now(),
                    lease_owner = NULL, lease_expires_at = NULL, last_error = NULL, updated_at = now()
               FROM unnest(?::text[], ?::int[], ?::text[]) AS v(id, attempts, result)
              WHERE j.id = v.id AND j.attempts = v.attempts AND j.status = 'Running' AND j.lease_owner = ?
             RETURNING j.id`,
            [batch.map((c) => c.job.id), batch.map((c) => c.job.attempts), batch.map((c) => JSON.stringify(c.result)), this.opts.replicaId],
          ));
          const ids = new Set(updated.map((r) => r.id));
          const events = batch.filter((c) => ids.has(c.job.id)).map((c) => ({
            category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'job_completed', resource_type: 'job', resource_id: c.job.id,
            details: { type: c.job.type, attempts: c.job.attempts, replica: this.opts.replicaId },
          }));
          await this.audit.append(events, trx);
          return ids;
        });
        for (const c of batch) c.resolve(done.has(c.job.id));
      } catch (err) {
        for (const c of batch) c.reject(err);
      }
    }
    this.completing = null;
  }

  /** Puts a claimed job back for a later look without spending an attempt (a retry_later outcome). */
  async reschedule(job: JobRow, delayMs: number, note?: string): Promise<boolean> {
    const n = await this.knex('jobs').where(this.held(job)).update({
      status: 'Pending', attempts: Math.max(0, job.attempts - 1),
      scheduled_at: this.knex.raw(`now() + (? * interval '1 millisecond')`, [Number.isFinite(delayMs) ? Math.max(0, delayMs) : 0]),
      lease_owner: null, lease_expires_at: null, last_error: note ?? null, updated_at: this.knex.fn.now(),
    });
    return n === 1;
  }

  /**
   * Records a failed attempt: back to Pending with backoff, or Failed when out of
   * attempts or the error is not retryable. Returns the new status, or null if this
   * replica (or `leaseOwner`: an agent, `agent:<id>`, reporting its leased job) no
   * longer held the lease. With `trx` it writes in the caller's transaction.
   */
  async fail(job: JobRow, error: string, opts: { retryable?: boolean; leaseOwner?: string; trx?: Knex.Transaction } = {}): Promise<JobStatus | null> {
    const finalFailure = opts.retryable === false || job.attempts >= job.max_attempts;
    const run = async (trx: Knex.Transaction) => {
      const n = await trx('jobs').where(this.held(job, opts.leaseOwner)).update({
        status: finalFailure ? 'Failed' : 'Pending', last_error: error.slice(0, 2000), lease_owner: null, lease_expires_at: null, updated_at: trx.fn.now(),
        ...(finalFailure ? { completed_at: trx.fn.now() } : { scheduled_at: trx.raw(retryAt('?::int'), [this.opts.backoffBaseMs, job.attempts]) }),
      });
      if (n !== 1) return null;
      await this.audit.append({
        category: 'lifecycle', ...SYSTEM_ACTOR, action: finalFailure ? 'job_failed' : 'job_retry_scheduled', resource_type: 'job', resource_id: job.id,
        details: { type: job.type, attempts: job.attempts, max_attempts: job.max_attempts, error: error.slice(0, 500) },
      }, trx);
      return finalFailure ? 'Failed' : 'Pending';
    };
    return opts.trx ? run(opts.trx) : this.knex.transaction(run);
  }

  /**
   * Takes back jobs whose lease expired (their replica died or hung): retried with
   * backoff, or Failed when out of attempts. Cancels approvals that timed out; they
   * never go to Pending. Rows another transaction holds (a lease being renewed) are skipped.
   */
  async reap(batch = 500): Promise<{ requeued: number; failed: number; approvalsExpired: number }> {
    return this.knex.transaction(async (trx) => {
      const expired = rowsOf<{ id: string; type: string; status: JobStatus; attempts: number; max_attempts: number; lease_owner: string | null }>(await trx.raw(
        `WITH expired AS (
           SELECT id, lease_owner FROM jobs
            WHERE status = 'Running' AND lease_expires_at < now()
            ORDER BY lease_expires_at LIMIT ? FOR UPDATE SKIP LOCKED)
         UPDATE jobs j SET
                status = CASE WHEN j.attempts >= j.max_attempts THEN 'Failed' ELSE 'Pending' END,
                last_error = 'lease held by ' || coalesce(e.lease_owner, 'an unknown replica') || ' expired',
                lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
                completed_at = CASE WHEN j.attempts >= j.max_attempts THEN now() ELSE NULL END,
                scheduled_at = CASE WHEN j.attempts >= j.max_attempts THEN j.scheduled_at ELSE ${retryAt('j.attempts')} END
           FROM expired e WHERE j.id = e.id AND j.status = 'Running'
         RETURNING j.id, j.type, j.status, j.attempts, j.max_attempts, e.lease_owner`,
        [batch, this.opts.backoffBaseMs],
      ));
      const timedOut = (await trx('jobs')
        .where({ status: 'AwaitingApproval' })
        .where('approval_expires_at', '<', trx.fn.now())
        .update({ status: 'Cancelled', last_error: 'approval timed out', completed_at: trx.fn.now(), updated_at: trx.fn.now() })
        .returning(['id', 'type', 'certificate_id'])) as Pick<JobRow, 'id' | 'type' | 'certificate_id'>[];
      // Their approval requests expire and renewing certificates settle, in this transaction.
      await expireApprovals(trx, this.audit, timedOut);
      const events: AuditInput[] = [
        ...expired.map((j) => ({
          category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: j.status === 'Failed' ? 'job_failed' : 'job_lease_expired', resource_type: 'job', resource_id: j.id,
          details: { type: j.type, lease_owner: j.lease_owner, attempts: j.attempts, max_attempts: j.max_attempts },
        })),
        ...timedOut.map((j) => ({ category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'job_cancelled', resource_type: 'job', resource_id: j.id, details: { type: j.type, reason: 'approval_timeout' } })),
      ];
      if (events.length) await this.audit.append(events, trx);
      // An agent's Deployment job that ran out of attempts this way was never reported: alert on it here.
      await notifyAbandonedDeployments(trx, this.log, expired);
      const failed = expired.filter((j) => j.status === 'Failed').length;
      return { requeued: expired.length - failed, failed, approvalsExpired: timedOut.length };
    });
  }

  /**
   * Approves an AwaitingApproval job only if the approval has not timed out and the
   * approver is not the requester or a key in its lineage (auth/key-lineage.ts). It moves on to Pending (runnable), or to `next:
   * 'AwaitingCSR'` when an agent must first send a CSR (routed by `agent_id`). A
   * timed-out approval is cancelled on the spot instead.
   */
  async approve(id: string, opts: { actor: Actor; reason?: string; next?: 'Pending' | 'AwaitingCSR'; agent_id?: string | null; trx?: Knex.Transaction }): Promise<JobActionResult> {
    const next = opts.next ?? 'Pending';
    const run = async (trx: Knex.Transaction): Promise<JobActionResult> => {
      const [job] = (await trx('jobs')
        .where({ id, status: 'AwaitingApproval' })
        .where((q) => q.whereNull('approval_expires_at').orWhere('approval_expires_at', '>', trx.fn.now()))
        // Not the requester, nor a key in the requester's lineage (one minted the other).
        .where((q) => q.whereNull('requested_by').orWhereRaw(`requested_by NOT IN (${KEY_LINEAGE_SQL})`, [opts.actor.actor, opts.actor.actor]))
        .update({ status: next, scheduled_at: trx.fn.now(), updated_at: trx.fn.now(), ...(opts.agent_id !== undefined ? { agent_id: opts.agent_id } : {}) })
        .returning('*')) as JobRow[];
      if (job) {
        await this.audit.append({ category: 'lifecycle', ...opts.actor, action: 'job_approved', resource_type: 'job', resource_id: id, details: { type: job.type, reason: opts.reason ?? null, next } }, trx);
        await closeJobApprovals(trx, this.audit, [id], 'approved', { actor: opts.actor, reason: opts.reason });
        return { ok: true, job };
      }
      const refused = await this.whyRefused(trx, id, ['AwaitingApproval'], opts.actor);
      if (refused.reason === 'approval_expired') {
        // Settle it now rather than at the next reaper run.
        const n = await trx('jobs').where({ id, status: 'AwaitingApproval' }).where('approval_expires_at', '<', trx.fn.now())
          .update({ status: 'Cancelled', last_error: 'approval timed out', completed_at: trx.fn.now(), updated_at: trx.fn.now() });
        if (n === 1) {
          await this.audit.append({ category: 'lifecycle', ...SYSTEM_ACTOR, action: 'job_cancelled', resource_type: 'job', resource_id: id, details: { type: refused.job?.type, reason: 'approval_timeout' } }, trx);
          // As the reaper would: the request expires and a renewing certificate settles.
          await expireJobApprovals(trx, this.audit, [refused.job!]);
        }
      }
      return refused;
    };
    const result = opts.trx ? await run(opts.trx) : await this.knex.transaction(run);
    if (result.ok && next === 'Pending') this.afterCommit(opts.trx, () => this.wake());
    return result;
  }

  /** Rejects an AwaitingApproval job: Cancelled for good. */
  async reject(id: string, opts: { actor: Actor; reason?: string; trx?: Knex.Transaction }): Promise<JobActionResult> {
    return this.toCancelled(id, ['AwaitingApproval'], 'job_rejected', opts);
  }

  /** Cancels a job that has not started (Pending, AwaitingCSR, AwaitingApproval). */
  async cancel(id: string, opts: { actor: Actor; reason?: string; trx?: Knex.Transaction }): Promise<JobActionResult> {
    return this.toCancelled(id, CANCELLABLE_JOB_STATUSES, 'job_cancelled', opts);
  }

  private async toCancelled(id: string, from: readonly JobStatus[], action: string, opts: { actor: Actor; reason?: string; trx?: Knex.Transaction }): Promise<JobActionResult> {
    const run = async (trx: Knex.Transaction): Promise<JobActionResult> => {
      const [job] = (await trx('jobs').where({ id }).whereIn('status', from)
        .update({ status: 'Cancelled', last_error: opts.reason ?? null, completed_at: trx.fn.now(), updated_at: trx.fn.now() })
        .returning('*')) as JobRow[];
      if (!job) return this.whyRefused(trx, id, from);
      await this.audit.append({ category: 'lifecycle', ...opts.actor, action, resource_type: 'job', resource_id: id, details: { type: job.type, reason: opts.reason ?? null } }, trx);
      await closeJobApprovals(trx, this.audit, [id], action === 'job_rejected' ? 'rejected' : 'cancelled', { actor: opts.actor, reason: opts.reason });
      return { ok: true, job };
    };
    return opts.trx ? run(opts.trx) : this.knex.transaction(run);
  }

  private async whyRefused(trx: Knex.Transaction, id: string, from: readonly JobStatus[], approver?: Actor): Promise<JobActionResult & { ok: false }> {
    const job = (await trx('jobs').where({ id }).first()) as JobRow | undefined;
    if (!job) return { ok: false, reason: 'not_found' };
    if (!from.includes(job.status)) return { ok: false, reason: 'wrong_status', job };
    if (approver && job.requested_by && (await sameKeyLineage(trx, job.requested_by, approver.actor))) return { ok: false, reason: 'same_actor', job };
    return { ok: false, reason: 'approval_expired', job };
  }

  /**
   * Claims and runs jobs until none are runnable or the queue is stopping (or `signal`
   * fires), keeping at most `concurrency` in flight. By default it resolves when the
   * jobs it started have finished; with `waitForJobs: false` (the job-processor loop)
   * it resolves once nothing more can be claimed, so one slow job never holds up
   * claiming into free slots: a job that finishes while no drain runs wakes the loop.
   */
  async drainOnce(signal?: AbortSignal, opts: { waitForJobs?: boolean } = {}): Promise<number> {
    if (this.stopping || signal?.aborted) return 0;
    const drain = this.drain(signal, opts.waitForJobs ?? true);
    this.drains.add(drain);
    try {
      return await drain;
    } finally {
      this.drains.delete(drain);
    }
  }

  private async drain(signal: AbortSignal | undefined, waitForJobs: boolean): Promise<number> {
    let ran = 0;
    const started: Promise<void>[] = [];
    while (!this.stopping && !signal?.aborted) {
      const free = this.opts.concurrency - this.running.size;
      if (free <= 0) {
        await Promise.race([...this.running.values()].map((r) => r.done));
        // Completions land in batches: let the whole batch settle, then claim for all freed slots at once.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      const jobs = await this.claim(free);
      if (jobs.length === 0) break;
      // Claimed jobs always start, even if stop() came in meanwhile: they are ours until
      // finished, and stop() waits for this drain too.
      for (const job of jobs) started.push(this.start(job));
      ran += jobs.length;
    }
    if (waitForJobs) await Promise.all(started);
    return ran;
  }

  private start(job: JobRow): Promise<void> {
    const controller = new AbortController();
    const entry: RunningJob = { job, controller, done: Promise.resolve(), handlerDone: false };
    this.running.set(job.id, entry);
    entry.done = this.run(entry).finally(() => {
      if (this.running.get(job.id) === entry) this.running.delete(job.id);
      if (this.running.size === 0) this.stopHeartbeat();
      // A freed slot: if no drain is claiming, ask for one (more work may be waiting).
      if (!this.stopping && this.drains.size === 0) this.wake();
    });
    this.startHeartbeat();
    return entry.done;
  }

  private async run(entry: RunningJob): Promise<void> {
    const { job, controller } = entry;
    const handler = this.handlers.get(job.type);
    const log = this.log.child({ job_id: job.id, job_type: job.type });
    let outcome: JobOutcome | void;
    try {
      if (!handler) throw Object.assign(new Error(`no handler for ${job.type} jobs on this replica`), { retryable: true });
      outcome = await handler(job, { signal: controller.signal, log });
    } catch (err) {
      entry.handlerDone = true;
      const message = err instanceof Error ? err.message : String(err);
      log.warn({ err: message }, 'job attempt failed');
      // Interrupted by shutdown: hand it back without spending the attempt.
      const recorded = this.hardStop.signal.aborted
        ? this.reschedule(job, 0, `interrupted by shutdown: ${message}`)
        : this.fail(job, message, { retryable: (err as { retryable?: boolean } | null)?.retryable });
      await recorded.catch((e: unknown) => log.error({ err: e }, 'could not record the failed attempt; the lease will expire and the reaper retries it'));
      return;
    }
    entry.handlerDone = true;
    try {
      const held = outcome && outcome.status === 'retry_later'
        ? await this.reschedule(job, outcome.delayMs, outcome.note)
        : await this.complete(job, outcome?.result);
      if (!held) log.warn('job finished after this replica lost its lease; outcome discarded');
    } catch (err) {
      log.error({ err }, 'could not record the job outcome; the lease will expire and the reaper retries it');
    }
  }

  /** One lease renewal per replica for all its running jobs; a job whose lease is gone is told to stop. */
  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => void this.renewLeases(), Math.max(10, Math.floor(this.opts.leaseMs / 3)));
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private async renewLeases(): Promise<void> {
    const entries = [...this.running.values()];
    if (!entries.length || this.renewing) return;
    this.renewing = true;
    const key = (r: { id: string; attempts: number }) => `${r.id}/${r.attempts}`;
    try {
      const ids = entries.map((e) => e.job.id);
      // SKIP LOCKED: never wait on (and so never deadlock with) a completion batch or the
      // reaper holding some of these rows; a skipped row is checked below, not renewed.
      const renewed = rowsOf<{ id: string; attempts: number }>(await this.knex.raw(
        `UPDATE jobs SET lease_expires_at = now() + (? * interval '1 millisecond')
          WHERE id IN (SELECT id FROM jobs WHERE id = ANY(?) AND status = 'Running' AND lease_owner = ? FOR UPDATE SKIP LOCKED)
          RETURNING id, attempts`,
        [this.opts.leaseMs, ids, this.opts.replicaId],
      ));
      const alive = new Set(renewed.map(key));
      let missing = entries.filter((e) => !alive.has(key(e.job)));
      if (missing.length) {
        // Locked rather than lost? Read the committed state (a plain read takes no lock).
        const held = (await this.knex('jobs').whereIn('id', missing.map((e) => e.job.id))
          .where({ status: 'Running', lease_owner: this.opts.replicaId }).select('id', 'attempts')) as { id: string; attempts: number }[];
        const stillOurs = new Set(held.map(key));
        missing = missing.filter((e) => !stillOurs.has(key(e.job)));
      }
      for (const e of missing) {
        if (this.running.get(e.job.id) !== e || e.handlerDone) continue;
        this.log.warn({ job_id: e.job.id }, 'lost the lease on a running job (reaped or taken over); aborting it');
        e.controller.abort(new Error('job lease lost'));
      }
    } catch (err) {
      this.log.warn({ err }, 'lease renewal failed');
    } finally {
      this.renewing = false;
    }
  }

  private wake(): void {
    this.wakeListeners.forEach((fn) => fn());
  }

  private afterCommit(trx: Knex.Transaction | undefined, fn: () => void): void {
    if (trx) trx.executionPromise.then(fn, () => {});
    else fn();
  }

  /**
   * Graceful stop: claims nothing new and waits up to timeoutMs for running jobs.
   * If they do not finish in time their handlers are aborted and false is returned;
   * such jobs keep their lease and are retried after it expires.
   */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    let timer: NodeJS.Timeout | undefined;
    const settled = (async () => {
      // Drains may still be starting jobs they claimed; wait for them, then for stragglers.
      await Promise.all(this.drains);
      await Promise.all([...this.running.values()].map((r) => r.done));
      return true;
    })();
    const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const ok = await Promise.race([settled, timedOut]);
    clearTimeout(timer);
    if (!ok) {
      this.hardStop.abort(new Error('shutdown'));
      for (const r of this.running.values()) r.controller.abort(new Error('shutdown'));
      this.log.warn({ running: this.running.size, timeout_ms: timeoutMs }, 'job queue stop timed out; running jobs keep their lease until it expires');
    }
    this.stopHeartbeat();
    return ok;
  }
}
