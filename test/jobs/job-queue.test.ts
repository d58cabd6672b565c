import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import { JOB_TRANSITIONS, TERMINAL_JOB_STATUSES } from '../../kernel/src/jobs/job-states.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel } from '../support/test-kernel.js';
import { gapMs, jobsHarness, sleep, waitFor, type JobsHarness } from './support.js';

const admin = { actor: 'key-admin', actor_type: 'api_key' };
const otherAdmin = { actor: 'key-second', actor_type: 'api_key' };

describe.skipIf(POSTGRES_UNAVAILABLE)('job queue', () => {
  let h: JobsHarness;
  beforeAll(async () => { h = await jobsHarness(); });
  afterAll(async () => { await h?.close(); });
  beforeEach(async () => { await h.db.knex('jobs').del(); });

  describe('enqueue, claim, complete', () => {
    it('enqueues Pending jobs and records job_created', async () => {
      const q = h.queue();
      const [a, b] = await q.enqueue([{ type: 'Validation', payload: { n: 1 } }, { type: 'Deployment', requested_by: 'key-admin' }], { actor: admin });
      expect(a).toMatchObject({ type: 'Validation', status: 'Pending', attempts: 0, max_attempts: 3, payload: { n: 1 }, lease_owner: null });
      expect(b).toMatchObject({ type: 'Deployment', status: 'Pending', requested_by: 'key-admin' });
      expect(a.id).toMatch(/^job-[0-9a-f]{16}$/);
      expect(await h.actions(a.id)).toEqual(['job_created']);
      const ev = await h.db.knex('audit_events').where({ resource_id: a.id }).first();
      expect(ev).toMatchObject({ actor: 'key-admin', category: 'lifecycle' });
    });

    it('claims only due Pending jobs of the asked types, each once, under a lease', async () => {
      const q = h.queue({ leaseMs: 45_000 });
      const [due1, due2, later, other] = await q.enqueue([
        { type: 'Validation' }, { type: 'Validation' },
        { type: 'Validation', scheduled_at: new Date(Date.now() + 3_600_000) },
        { type: 'Renewal' },
      ]);
      const claimed = await q.claim(10, ['Validation']);
      expect(claimed.map((j) => j.id).sort()).toEqual([due1.id, due2.id].sort());
      for (const j of claimed) {
        expect(j).toMatchObject({ status: 'Running', lease_owner: q.opts.replicaId, attempts: 1 });
        expect(gapMs(j.lease_expires_at, j.updated_at)).toBe(45_000);
        expect(j.started_at).not.toBeNull();
      }
      expect(await q.claim(10, ['Validation'])).toEqual([]);
      expect((await h.job(later.id)).status).toBe('Pending');
      expect((await h.job(other.id)).status).toBe('Pending');
      // Limit is honoured.
      expect(await q.claim(1, ['Renewal'])).toHaveLength(1);
      // No handlers registered, no types given: nothing to claim.
      expect(await q.claim(10)).toEqual([]);
    });

    it('claims for another owner (an agent): only that agent\'s jobs, inside the caller\'s transaction', async () => {
      const q = h.queue({ leaseMs: 45_000 });
      await h.db.knex('agents').insert([{ id: 'agent-claim-a', name: 'a' }, { id: 'agent-claim-b', name: 'b' }]).onConflict('id').ignore();
      const [mine, theirs] = await q.enqueue([{ type: 'Deployment', agent_id: 'agent-claim-a' }, { type: 'Deployment', agent_id: 'agent-claim-b' }]);
      // Rolled back with the caller's transaction: the lease never existed.
      await h.db.knex.transaction(async (trx) => {
        const leased = await q.claimFor({ limit: 5, types: ['Deployment'], owner: 'agent:agent-claim-a', agentId: 'agent-claim-a', trx });
        expect(leased.map((j) => j.id)).toEqual([mine.id]);
        await trx.rollback();
      }).catch(() => {});
      expect(await h.job(mine.id)).toMatchObject({ status: 'Pending', attempts: 0, lease_owner: null });
      const [leased] = await h.db.knex.transaction((trx) => q.claimFor({ limit: 5, types: ['Deployment'], owner: 'agent:agent-claim-a', agentId: 'agent-claim-a', trx }));
      expect(leased).toMatchObject({ id: mine.id, status: 'Running', lease_owner: 'agent:agent-claim-a', attempts: 1 });
      expect(gapMs(leased.lease_expires_at, leased.updated_at)).toBe(45_000);
      expect((await h.job(theirs.id)).status).toBe('Pending');
    });

    it('completes a claimed job once, storing the result and job_completed', async () => {
      const q = h.queue();
      const [job] = await q.enqueue({ type: 'Validation' });
      const [claimed] = await q.claim(1, ['Validation']);
      expect(await q.complete(claimed, { ok: 1 })).toBe(true);
      const row = await h.job(job.id);
      expect(row).toMatchObject({ status: 'Completed', result: { ok: 1 }, lease_owner: null, lease_expires_at: null, last_error: null });
      expect(row.completed_at).not.toBeNull();
      expect(await q.complete(claimed, { ok: 2 })).toBe(false);
      expect((await h.job(job.id)).result).toEqual({ ok: 1 });
      expect(await h.actions(job.id)).toEqual(['job_created', 'job_completed']);
    });

    it('runs jobs through registered handlers, never more than `concurrency` at once', async () => {
      const q = h.queue({ concurrency: 3 });
      let now = 0;
      let peak = 0;
      const seen: string[] = [];
      q.registerHandler('Validation', async (job) => {
        now++;
        peak = Math.max(peak, now);
        seen.push(job.id);
        await sleep(5);
        now--;
        return { status: 'completed', result: { by: 'test' } };
      });
      const jobs = await q.enqueue(Array.from({ length: 20 }, () => ({ type: 'Validation' as const })));
      expect(await q.drainOnce()).toBe(20);
      expect(peak).toBeLessThanOrEqual(3);
      expect(seen.sort()).toEqual(jobs.map((j) => j.id).sort());
      const statuses = await h.db.knex('jobs').whereIn('id', jobs.map((j) => j.id)).pluck('status');
      expect(new Set(statuses)).toEqual(new Set(['Completed']));
      expect(q.inFlight).toBe(0);
    });
  });

  it('without waiting for its jobs, a drain returns at once, and a slow job does not hold up the free slots', async () => {
    const q = h.queue({ concurrency: 2 });
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const fast: string[] = [];
    q.registerHandler('Issuance', async () => { await gate; return { status: 'completed' }; });
    q.registerHandler('Validation', async (job) => { fast.push(job.id); return { status: 'completed' }; });
    let wakes = 0;
    q.onWake(() => { wakes++; });
    const [slow] = await q.enqueue({ type: 'Issuance' });
    // The slow job takes one slot; the drain does not wait for it.
    expect(await q.drainOnce(undefined, { waitForJobs: false })).toBe(1);
    expect(q.inFlight).toBe(1);
    const quick = await q.enqueue(Array.from({ length: 5 }, () => ({ type: 'Validation' as const })));
    // Meanwhile the free slot keeps working through other jobs.
    expect(await q.drainOnce(undefined, { waitForJobs: false })).toBe(5);
    await vi.waitFor(() => expect(fast).toHaveLength(5));
    expect((await h.job(slow.id)).status).toBe('Running');
    const wakesBefore = wakes;
    release();
    // A slot freed while no drain runs asks for another drain.
    await vi.waitFor(async () => expect((await h.job(slow.id)).status).toBe('Completed'));
    expect(wakes).toBeGreaterThan(wakesBefore);
    expect(new Set(await h.db.knex('jobs').whereIn('id', quick.map((j) => j.id)).pluck('status'))).toEqual(new Set(['Completed']));
  });

  describe('failures and retries', () => {
    it('retries a throwing handler with growing backoff, then fails at max_attempts', async () => {
      const q = h.queue({ backoffBaseMs: 10_000, maxAttempts: 3 });
      let calls = 0;
      q.registerHandler('Issuance', async () => {
        calls++;
        throw new Error(`CA unreachable (${calls})`);
      });
      const [job] = await q.enqueue({ type: 'Issuance' });

      await q.drainOnce();
      let row = await h.job(job.id);
      expect(row).toMatchObject({ status: 'Pending', attempts: 1, last_error: 'CA unreachable (1)', lease_owner: null });
      // Backoff 10 s +-20%, measured on the database clock.
      expect(gapMs(row.scheduled_at, row.updated_at)).toBeGreaterThanOrEqual(8_000);
      expect(gapMs(row.scheduled_at, row.updated_at)).toBeLessThanOrEqual(12_000);
      // Not due yet: another pass does nothing.
      expect(await q.drainOnce()).toBe(0);

      await h.due(job.id);
      await q.drainOnce();
      row = await h.job(job.id);
      expect(row).toMatchObject({ status: 'Pending', attempts: 2, last_error: 'CA unreachable (2)' });
      expect(gapMs(row.scheduled_at, row.updated_at)).toBeGreaterThanOrEqual(16_000);
      expect(gapMs(row.scheduled_at, row.updated_at)).toBeLessThanOrEqual(24_000);

      await h.due(job.id);
      await q.drainOnce();
      row = await h.job(job.id);
      expect(row).toMatchObject({ status: 'Failed', attempts: 3, last_error: 'CA unreachable (3)', lease_owner: null });
      expect(row.completed_at).not.toBeNull();
      expect(calls).toBe(3);

      await h.due(job.id);
      expect(await q.drainOnce()).toBe(0);
      expect(calls).toBe(3);
      expect(await h.actions(job.id)).toEqual(['job_created', 'job_retry_scheduled', 'job_retry_scheduled', 'job_failed']);
      const failed = await h.db.knex('audit_events').where({ resource_id: job.id, action: 'job_failed' }).first();
      expect(failed.details).toMatchObject({ attempts: 3, max_attempts: 3, error: 'CA unreachable (3)' });
    });

    it('fails a non-retryable error at once', async () => {
      const q = h.queue({ maxAttempts: 5 });
      q.registerHandler('Issuance', async () => { throw Object.assign(new Error('CSR key too weak'), { retryable: false }); });
      const [job] = await q.enqueue({ type: 'Issuance' });
      await q.drainOnce();
      expect(await h.job(job.id)).toMatchObject({ status: 'Failed', attempts: 1, last_error: 'CSR key too weak' });
      expect(await h.actions(job.id)).toEqual(['job_created', 'job_failed']);
    });

    it('respects a per-job max_attempts', async () => {
      const q = h.queue({ maxAttempts: 5 });
      q.registerHandler('Issuance', async () => { throw new Error('nope'); });
      const [job] = await q.enqueue({ type: 'Issuance', max_attempts: 1 });
      await q.drainOnce();
      expect(await h.job(job.id)).toMatchObject({ status: 'Failed', attempts: 1, max_attempts: 1 });
    });

    it('puts a retry_later job back without spending an attempt, then completes it', async () => {
      const q = h.queue({ maxAttempts: 1 });
      let polls = 0;
      q.registerHandler('Issuance', async () => {
        polls++;
        return polls < 3 ? { status: 'retry_later', delayMs: 5_000, note: 'order still processing' } : { status: 'completed', result: { serial: '01' } };
      });
      const [job] = await q.enqueue({ type: 'Issuance' });
      await q.drainOnce();
      let row = await h.job(job.id);
      // Even with max_attempts 1, polling never uses the attempt up.
      expect(row).toMatchObject({ status: 'Pending', attempts: 0, last_error: 'order still processing', lease_owner: null });
      expect(gapMs(row.scheduled_at, row.updated_at)).toBe(5_000);
      expect(await q.drainOnce()).toBe(0);
      await h.due(job.id);
      await q.drainOnce();
      await h.due(job.id);
      await q.drainOnce();
      row = await h.job(job.id);
      expect(row).toMatchObject({ status: 'Completed', attempts: 1, result: { serial: '01' }, last_error: null });
      expect(polls).toBe(3);
    });
  });

  describe('leases and the reaper', () => {
    /** Claims with a short-lease "replica" that then dies (never finishes), and waits out the lease. */
    async function claimAndDie(leaseMs: number, jobs: { max_attempts?: number }[]) {
      const dead = h.queue({ replicaId: 'replica-dead', leaseMs });
      const created = await dead.enqueue(jobs.map((j) => ({ type: 'Deployment' as const, ...j })));
      const claimed = await dead.claim(jobs.length, ['Deployment']);
      expect(claimed).toHaveLength(jobs.length);
      await waitFor(async () => {
        const r = await h.db.knex.raw(`select count(*)::int as n from jobs where status = 'Running' and lease_expires_at < now()`);
        return (r.rows ?? r)[0].n === jobs.length;
      }, 'leases to expire');
      return { dead, created, claimed };
    }

    it('returns a dead replica\'s job to Pending with backoff, or Failed when out of attempts', async () => {
      const { dead, created, claimed } = await claimAndDie(150, [{ max_attempts: 3 }, { max_attempts: 1 }]);
      const reaper = h.queue({ replicaId: 'replica-alive', backoffBaseMs: 20_000 });
      expect(await reaper.reap()).toEqual({ requeued: 1, failed: 1, approvalsExpired: 0 });

      const retried = await h.job(created[0].id);
      expect(retried).toMatchObject({ status: 'Pending', attempts: 1, lease_owner: null, lease_expires_at: null, last_error: 'lease held by replica-dead expired' });
      expect(gapMs(retried.scheduled_at, retried.updated_at)).toBeGreaterThanOrEqual(16_000);
      expect(gapMs(retried.scheduled_at, retried.updated_at)).toBeLessThanOrEqual(24_000);
      const failed = await h.job(created[1].id);
      expect(failed).toMatchObject({ status: 'Failed', attempts: 1, lease_owner: null });
      expect(failed.completed_at).not.toBeNull();
      expect(await h.actions(created[0].id)).toEqual(['job_created', 'job_lease_expired']);
      expect(await h.actions(created[1].id)).toEqual(['job_created', 'job_failed']);

      // The dead replica wakes up: everything it tries on its old claims is a no-op.
      const byId = new Map(claimed.map((j) => [j.id, j]));
      expect(await dead.complete(byId.get(created[0].id)!)).toBe(false);
      expect(await dead.fail(byId.get(created[0].id)!, 'late')).toBeNull();
      expect(await dead.reschedule(byId.get(created[0].id)!, 0)).toBe(false);
      expect(await dead.complete(byId.get(created[1].id)!)).toBe(false);
      expect(await h.job(created[0].id)).toMatchObject({ status: 'Pending', attempts: 1 });
      expect((await h.job(created[1].id)).status).toBe('Failed');
      expect(await reaper.reap()).toEqual({ requeued: 0, failed: 0, approvalsExpired: 0 });
    });

    it('fences a stale claim even when the same replica re-claims the job', async () => {
      const { dead, created, claimed } = await claimAndDie(100, [{}]);
      await dead.reap();
      await h.due(created[0].id);
      const [again] = await dead.claim(1, ['Deployment']);
      expect(again).toMatchObject({ id: created[0].id, attempts: 2, lease_owner: 'replica-dead' });
      expect(await dead.complete(claimed[0], { stale: true })).toBe(false);
      expect(await dead.complete(again, { fresh: true })).toBe(true);
      expect(await h.job(created[0].id)).toMatchObject({ status: 'Completed', result: { fresh: true } });
    });

    it('leaves live leases alone and keeps renewing the lease of a long-running job', async () => {
      // Renewed every lease/3; the reaper polls far more often than that.
      const q = h.queue({ leaseMs: 500 });
      const reaper = h.queue({ replicaId: 'replica-reaper' });
      let runs = 0;
      q.registerHandler('Validation', async () => {
        runs++;
        await sleep(1_600); // over three lease lengths
        return { status: 'completed' };
      });
      const [job] = await q.enqueue({ type: 'Validation' });
      const drained = q.drainOnce();
      const reaped = { requeued: 0, failed: 0 };
      const end = Date.now() + 1_400;
      while (Date.now() < end) {
        const r = await reaper.reap();
        reaped.requeued += r.requeued;
        reaped.failed += r.failed;
        await sleep(50);
      }
      await drained;
      expect(reaped).toEqual({ requeued: 0, failed: 0 });
      expect(runs).toBe(1);
      expect(await h.job(job.id)).toMatchObject({ status: 'Completed', attempts: 1 });
    });

    it('tells a handler that its lease was lost, and discards its outcome', async () => {
      const q = h.queue({ leaseMs: 150 });
      let aborted: unknown = null;
      q.registerHandler('Validation', async (_job, { signal }) => {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        aborted = signal.reason;
        return { status: 'completed', result: { late: true } };
      });
      const [job] = await q.enqueue({ type: 'Validation' });
      const drained = q.drainOnce();
      await waitFor(async () => (await h.job(job.id)).status === 'Running', 'the claim');
      // Another replica reaped and re-claimed it meanwhile (as after a long stall here).
      await h.db.knex('jobs').where({ id: job.id }).update({ lease_owner: 'replica-other', attempts: 2 });
      await drained;
      expect(String(aborted)).toContain('lease lost');
      expect(await h.job(job.id)).toMatchObject({ status: 'Running', lease_owner: 'replica-other', result: null });
      expect(await h.actions(job.id)).toEqual(['job_created']);
    });
  });

  describe('jobs that must never run', () => {
    it('never claims Cancelled, AwaitingApproval, AwaitingCSR, Completed or Failed jobs', async () => {
      const q = h.queue();
      let calls = 0;
      q.registerHandler('Issuance', async () => { calls++; });
      const [waitingApproval, waitingCsr, toCancel] = await q.enqueue([
        { type: 'Issuance', status: 'AwaitingApproval', requested_by: 'key-admin' },
        { type: 'Issuance', status: 'AwaitingCSR' },
        { type: 'Issuance' },
      ]);
      expect(await q.cancel(toCancel.id, { actor: admin, reason: 'operator changed their mind' })).toMatchObject({ ok: true, job: { status: 'Cancelled' } });
      const [done, failed] = await q.enqueue([{ type: 'Issuance' }, { type: 'Issuance' }]);
      await h.db.knex('jobs').where({ id: done.id }).update({ status: 'Completed' });
      await h.db.knex('jobs').where({ id: failed.id }).update({ status: 'Failed' });
      await h.db.knex('jobs').update({ scheduled_at: h.db.knex.raw(`now() - interval '1 day'`) });

      expect(await q.claim(100, ['Issuance'])).toEqual([]);
      expect(await q.drainOnce()).toBe(0);
      expect(calls).toBe(0);
      expect((await h.job(waitingApproval.id)).status).toBe('AwaitingApproval');
      expect((await h.job(waitingCsr.id)).status).toBe('AwaitingCSR');
      expect((await h.job(toCancel.id)).status).toBe('Cancelled');
      expect(await h.actions(toCancel.id)).toEqual(['job_created', 'job_cancelled']);
      // Finished jobs cannot be cancelled; unknown ones are reported as such.
      expect(await q.cancel(done.id, { actor: admin })).toMatchObject({ ok: false, reason: 'wrong_status' });
      expect(await q.cancel('job-0000000000000000', { actor: admin })).toEqual({ ok: false, reason: 'not_found' });
    });

    it('cancels a timed-out approval and never makes it Pending', async () => {
      const q = h.queue();
      let calls = 0;
      q.registerHandler('Renewal', async () => { calls++; });
      const [soon, later] = await q.enqueue([
        { type: 'Renewal', status: 'AwaitingApproval', approval_expires_at: new Date(Date.now() + 200), requested_by: 'key-admin' },
        { type: 'Renewal', status: 'AwaitingApproval', approval_expires_at: new Date(Date.now() + 3_600_000), requested_by: 'key-admin' },
      ]);
      expect(await q.reap()).toMatchObject({ approvalsExpired: 0 });
      await sleep(300);
      expect(await q.reap()).toMatchObject({ approvalsExpired: 1 });
      expect(await h.job(soon.id)).toMatchObject({ status: 'Cancelled', last_error: 'approval timed out' });
      expect((await h.job(later.id)).status).toBe('AwaitingApproval');
      const ev = await h.db.knex('audit_events').where({ resource_id: soon.id, action: 'job_cancelled' }).first();
      expect(ev.details).toMatchObject({ reason: 'approval_timeout' });

      // A late approval changes nothing; the job never runs.
      expect(await q.approve(soon.id, { actor: otherAdmin })).toMatchObject({ ok: false, reason: 'wrong_status' });
      expect(await q.drainOnce()).toBe(0);
      expect(calls).toBe(0);
      const history = (await h.db.knex('audit_events').where({ resource_id: soon.id }).pluck('action')) as string[];
      expect(history).not.toContain('job_approved');
    });

    it('refuses an approval that arrives after the timeout, before the reaper ran, and cancels the job', async () => {
      const q = h.queue();
      const [job] = await q.enqueue({ type: 'Renewal', status: 'AwaitingApproval', approval_expires_at: new Date(Date.now() - 1_000), requested_by: 'key-admin' });
      expect(await q.approve(job.id, { actor: otherAdmin })).toMatchObject({ ok: false, reason: 'approval_expired' });
      expect(await h.job(job.id)).toMatchObject({ status: 'Cancelled', last_error: 'approval timed out' });
      expect(await q.claim(10, ['Renewal'])).toEqual([]);
      expect(await h.actions(job.id)).toEqual(['job_created', 'job_cancelled']);
    });

    it('gives AwaitingApproval jobs the configured approval timeout', async () => {
      const q = h.queue({ approvalTimeoutMs: 72 * 3_600_000 });
      const [job] = await q.enqueue({ type: 'Renewal', status: 'AwaitingApproval' });
      expect(gapMs(job.approval_expires_at, new Date()) / 3_600_000).toBeCloseTo(72, 1);
      const [plain] = await q.enqueue({ type: 'Renewal' });
      expect(plain.approval_expires_at).toBeNull();
    });

    it('runs an approved job; a rejected or self-approved one never', async () => {
      const q = h.queue();
      const ran: string[] = [];
      q.registerHandler('Renewal', async (job) => { ran.push(job.id); });
      const [approved, rejected, self] = await q.enqueue([1, 2, 3].map(() => ({
        type: 'Renewal' as const, status: 'AwaitingApproval' as const, requested_by: 'key-admin', approval_expires_at: new Date(Date.now() + 3_600_000),
      })));
      expect(await q.approve(self.id, { actor: admin })).toMatchObject({ ok: false, reason: 'same_actor' });
      expect(await q.reject(rejected.id, { actor: otherAdmin, reason: 'not this week' })).toMatchObject({ ok: true, job: { status: 'Cancelled', last_error: 'not this week' } });
      expect(await q.approve(rejected.id, { actor: otherAdmin })).toMatchObject({ ok: false, reason: 'wrong_status' });
      expect(await q.approve(approved.id, { actor: otherAdmin, reason: 'looks right' })).toMatchObject({ ok: true, job: { status: 'Pending' } });
      expect(await q.reject(approved.id, { actor: otherAdmin })).toMatchObject({ ok: false, reason: 'wrong_status' });

      await q.drainOnce();
      expect(ran).toEqual([approved.id]);
      expect((await h.job(approved.id)).status).toBe('Completed');
      expect((await h.job(rejected.id)).status).toBe('Cancelled');
      expect((await h.job(self.id)).status).toBe('AwaitingApproval');
      expect(await h.actions(approved.id)).toEqual(['job_created', 'job_approved', 'job_completed']);
      expect(await h.actions(rejected.id)).toEqual(['job_created', 'job_rejected']);
    });

    it('can hand an approved job to an agent for its CSR instead (still not runnable)', async () => {
      const q = h.queue();
      let calls = 0;
      q.registerHandler('Renewal', async () => { calls++; });
      const [job] = await q.enqueue({ type: 'Renewal', status: 'AwaitingApproval', requested_by: 'key-admin', approval_expires_at: new Date(Date.now() + 60_000) });
      const res = await q.approve(job.id, { actor: otherAdmin, next: 'AwaitingCSR', agent_id: null });
      expect(res).toMatchObject({ ok: true, job: { status: 'AwaitingCSR' } });
      expect(await q.drainOnce()).toBe(0);
      expect(calls).toBe(0);
      const ev = await h.db.knex('audit_events').where({ resource_id: job.id, action: 'job_approved' }).first();
      expect(ev).toMatchObject({ actor: 'key-second', details: { next: 'AwaitingCSR' } });
    });

    it('documents a state machine where refused work has no way back', () => {
      for (const s of TERMINAL_JOB_STATUSES) expect(JOB_TRANSITIONS[s]).toEqual([]);
      const into = (to: string) => Object.entries(JOB_TRANSITIONS).filter(([, tos]) => tos.includes(to as never)).map(([from]) => from);
      expect(into('Running')).toEqual(['Pending']);
    });
  });

  describe('several replicas', () => {
    it('never hands one job to two replicas claiming at the same time', async () => {
      const replicas = [h.queue({ replicaId: 'r1' }), h.queue({ replicaId: 'r2' }), h.queue({ replicaId: 'r3' })];
      const jobs = await replicas[0].enqueue(Array.from({ length: 300 }, () => ({ type: 'Validation' as const })));
      const claims = await Promise.all(replicas.map(async (q) => {
        const got: JobRow[] = [];
        for (let batch = await q.claim(7, ['Validation']); batch.length; batch = await q.claim(7, ['Validation'])) got.push(...batch);
        return got;
      }));
      const ids = claims.flat().map((j) => j.id);
      expect(ids).toHaveLength(300);
      expect(new Set(ids).size).toBe(300);
      expect(new Set(ids)).toEqual(new Set(jobs.map((j) => j.id)));
    });
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('job queue in a running kernel', () => {
  it('runs a job enqueued through the kernel soon after, via the job-processor loop', async () => {
    const done: string[] = [];
    const t = await startTestKernel({
      // A long interval: only the enqueue wake-up can make this fast.
      env: { CERTCTL_JOB_PROCESSOR_INTERVAL: '1h' },
      start: { jobHandlers: { Validation: async (job) => { done.push(job.id); return { status: 'completed', result: { checked: true } }; } } },
    });
    try {
      const [job] = await t.kernel.jobs.enqueue({ type: 'Validation' });
      await waitFor(() => done.includes(job.id), 'the job to run', 5_000);
      await waitFor(async () => (await t.kernel.db.knex('jobs').where({ id: job.id }).first()).status === 'Completed', 'completion', 5_000);
      const status = t.kernel.scheduler.status();
      expect(status.find((l) => l.name === 'job-processor')).toMatchObject({ single_replica: false });
      expect(status.find((l) => l.name === 'job-reaper')).toMatchObject({ single_replica: true });
    } finally {
      await t.stop();
    }
  });
});
