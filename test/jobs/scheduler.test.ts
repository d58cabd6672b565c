import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../kernel/src/db/database.js';
import { Scheduler, loopLockKey, nextDelay, type LoopDef } from '../../kernel/src/scheduler/scheduler.js';
import { POSTGRES_UNAVAILABLE, TEST_DB } from '../support/test-db.js';
import { jobsHarness, silent, sleep, waitFor, type JobsHarness } from './support.js';

interface RunRow { loop: string; replica_id: string; started_at: Date; finished_at: Date | null; outcome: string; error: string | null }

/** A tick that counts how many copies of itself run at once. */
function tracked(ms: number) {
  const t = { now: 0, peak: 0, runs: 0, signals: [] as AbortSignal[] };
  const tick = async (signal: AbortSignal) => {
    t.now++;
    t.peak = Math.max(t.peak, t.now);
    t.runs++;
    t.signals.push(signal);
    try {
      await sleep(ms);
    } finally {
      t.now--;
    }
  };
  return { t, tick };
}

describe('scheduler timing', () => {
  it('keeps every wait within the jitter bounds', () => {
    const def = { intervalMs: 10_000 };
    expect(nextDelay(def, false, () => 0)).toBe(9_000);
    expect(nextDelay(def, false, () => 0.999999)).toBe(11_000);
    expect(nextDelay({ ...def, jitter: 0.3 }, false, () => 0)).toBe(7_000);
    expect(nextDelay({ ...def, jitter: 0 }, false, () => 0.7)).toBe(10_000);
    // Jitter is capped at half the interval, and negative means none.
    expect(nextDelay({ ...def, jitter: 5 }, false, () => 0)).toBe(5_000);
    expect(nextDelay({ ...def, jitter: -1 }, false, () => 0)).toBe(10_000);
    for (let i = 0; i < 2_000; i++) {
      const d = nextDelay(def, false);
      expect(d).toBeGreaterThanOrEqual(9_000);
      expect(d).toBeLessThanOrEqual(11_000);
    }
    // Runs soon after start, spread over at most a second (or the interval, if shorter).
    for (let i = 0; i < 200; i++) {
      expect(nextDelay(def, true)).toBeLessThanOrEqual(1_000);
      expect(nextDelay({ intervalMs: 50 }, true)).toBeLessThanOrEqual(50);
    }
    // A loop that must not run on startup waits a full (jittered) interval first.
    expect(nextDelay({ ...def, runOnStart: false }, true, () => 0)).toBe(9_000);
  });

  it('gives each loop a distinct, stable advisory-lock key above the kernel\'s own keys', () => {
    const names = ['job-processor', 'job-reaper', 'agent-health', 'renewal-check', 'notification-processor', 'short-lived-expiry', 'network-scan', 'digest', 'crl-publish'];
    const keys = names.map(loopLockKey);
    expect(new Set(keys).size).toBe(names.length);
    for (const k of keys) {
      expect(Number.isSafeInteger(k)).toBe(true);
      expect(k).toBeGreaterThan(2 ** 32);
    }
    expect(loopLockKey('job-reaper')).toBe(loopLockKey('job-reaper'));
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('scheduler', () => {
  let h: JobsHarness;
  const schedulers: Scheduler[] = [];
  const scheduler = (replica = 'replica-a') => {
    const s = new Scheduler(h.db, silent, replica);
    schedulers.push(s);
    return s;
  };
  const runsOf = async (loop: string) => (await h.db.knex('scheduler_runs').where({ loop }).orderBy('id')) as RunRow[];

  beforeAll(async () => { h = await jobsHarness(); });
  afterAll(async () => {
    for (const s of schedulers) await s.stop(2_000);
    await h?.close();
  });
  beforeEach(async () => { await h.db.knex('jobs').del(); });

  it('never runs a slow tick twice at once, and counts the skipped ticks', async () => {
    const s = scheduler();
    const { t, tick } = tracked(250);
    s.register({ name: 'slow-loop', intervalMs: 20, tick });
    const first = s.trigger('slow-loop');
    // The first timer tick fires into the running tick and is skipped; the timer
    // chain then waits for the tick in flight instead of piling up more.
    s.start();
    await first;
    await sleep(100);
    expect(await s.stop(2_000)).toBe(true);
    const st = s.status().find((l) => l.name === 'slow-loop')!;
    expect(t.peak).toBe(1);
    expect(st.skipped).toBeGreaterThanOrEqual(1);
    expect(st.runs).toBeGreaterThanOrEqual(2);
    expect(st.runs).toBe(t.runs);
    expect(st.running).toBe(false);
  });

  it('coalesces wake-ups during a tick into one follow-up run', async () => {
    const s = scheduler();
    const { t, tick } = tracked(150);
    s.register({ name: 'woken-loop', intervalMs: 3_600_000, tick });
    const first = s.trigger('woken-loop');
    await sleep(20);
    const wakes = [1, 2, 3, 4, 5].map(() => s.trigger('woken-loop'));
    await Promise.all([first, ...wakes]);
    // The wake-ups resolve only after the follow-up run has finished.
    expect(t.runs).toBe(2);
    expect(t.peak).toBe(1);
    await s.trigger('woken-loop');
    expect(t.runs).toBe(3);
  });

  it('ticks on its interval with jitter', async () => {
    const s = scheduler();
    const starts: number[] = [];
    s.register({ name: 'fast-loop', intervalMs: 60, runOnStart: false, tick: async () => { starts.push(Date.now()); } });
    const began = Date.now();
    s.start();
    await waitFor(() => starts.length >= 5, 'five ticks');
    await s.stop(1_000);
    expect(starts[0] - began).toBeGreaterThanOrEqual(53); // 60 ms - 10%, less a timer's millisecond
    for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBeGreaterThanOrEqual(53);
  });

  it('records a failing tick as an error in scheduler_runs and keeps the loop going', async () => {
    const s = scheduler();
    let n = 0;
    s.register({
      name: 'flaky-loop', intervalMs: 30, runOnStart: true,
      tick: async () => {
        n++;
        if (n === 1) throw new Error('upstream exploded');
      },
    });
    s.start();
    await waitFor(() => n >= 3, 'three ticks');
    await s.stop(1_000);
    const runs = await runsOf('flaky-loop');
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs[0]).toMatchObject({ replica_id: 'replica-a', outcome: 'error', error: 'upstream exploded' });
    expect(runs[0].finished_at).not.toBeNull();
    expect(runs.slice(1).every((r) => r.outcome === 'ok' && r.error === null)).toBe(true);
    const st = s.status().find((l) => l.name === 'flaky-loop')!;
    expect(st.last_error).toBeNull();
    expect(st.runs).toBe(n);
  });

  it('does not record loops that run on every replica (the job processor)', async () => {
    const s = scheduler();
    let n = 0;
    s.register({ name: 'every-replica-loop', intervalMs: 1_000, singleReplica: false, tick: async () => { n++; } });
    await s.trigger('every-replica-loop');
    expect(n).toBe(1);
    expect(await runsOf('every-replica-loop')).toEqual([]);
  });

  it('stop() waits for an in-flight tick within the bound and signals it', async () => {
    const s = scheduler();
    let finished = false;
    let sawAbort = false;
    s.register({
      name: 'draining-loop', intervalMs: 3_600_000,
      tick: async (signal) => {
        await sleep(300);
        sawAbort = signal.aborted;
        finished = true;
      },
    });
    void s.trigger('draining-loop');
    await sleep(20);
    const t0 = Date.now();
    expect(await s.stop(5_000)).toBe(true);
    expect(finished).toBe(true);
    expect(sawAbort).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    const [run] = await runsOf('draining-loop');
    expect(run).toMatchObject({ outcome: 'ok' });
    // Stopped for good: a later wake-up runs nothing.
    await s.trigger('draining-loop');
    expect((await runsOf('draining-loop')).length).toBe(1);
  });

  it('stop() gives up at the bound and says so', async () => {
    const s = scheduler();
    let release!: () => void;
    const stuck = new Promise<void>((r) => { release = r; });
    s.register({ name: 'stuck-loop', intervalMs: 3_600_000, tick: () => stuck });
    const running = s.trigger('stuck-loop');
    await sleep(20);
    const t0 = Date.now();
    expect(await s.stop(200)).toBe(false);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1_500);
    release();
    await running;
  });

  it.skipIf(TEST_DB !== 'postgres')('runs a singleReplica loop on one replica at a time (advisory lock)', async () => {
    // Two replicas, each with its own connection pool, like two processes.
    const other = await openDatabase({ databaseUrl: h.url!, poolMax: 5 });
    try {
      const a = scheduler('replica-a');
      const b = new Scheduler(other, silent, 'replica-b');
      let now = 0;
      let peak = 0;
      const def = (): LoopDef => ({
        name: 'exclusive-loop', intervalMs: 5, jitter: 0.5,
        tick: async () => {
          now++;
          peak = Math.max(peak, now);
          await sleep(15);
          now--;
        },
      });
      a.register(def());
      b.register(def());
      a.start();
      b.start();
      await sleep(1_500);
      await Promise.all([a.stop(2_000), b.stop(2_000)]);
      expect(peak).toBe(1);
      const runs = await runsOf('exclusive-loop');
      expect(runs.length).toBeGreaterThan(20);
      expect(new Set(runs.map((r) => r.replica_id))).toEqual(new Set(['replica-a', 'replica-b']));
      const sorted = runs.map((r) => [new Date(r.started_at).getTime(), new Date(r.finished_at!).getTime()]).sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i][0]).toBeGreaterThanOrEqual(sorted[i - 1][1]);
      const skipped = [a, b].map((s) => s.status()[0].skipped).reduce((x, y) => x + y, 0);
      expect(skipped).toBeGreaterThan(0);
    } finally {
      await other.close();
    }
  });

  describe('JobQueue.stop', () => {
    it('lets running jobs finish, then claims nothing more', async () => {
      const q = h.queue({ concurrency: 2 });
      let finished = 0;
      q.registerHandler('Deployment', async (_job, { signal }) => {
        await sleep(300);
        if (signal.aborted) throw new Error('aborted');
        finished++;
        return { status: 'completed' };
      });
      const jobs = await q.enqueue([{ type: 'Deployment' }, { type: 'Deployment' }, { type: 'Deployment' }]);
      const drained = q.drainOnce();
      await waitFor(() => q.inFlight === 2, 'two running jobs');
      const t0 = Date.now();
      expect(await q.stop(5_000)).toBe(true);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
      await drained;
      expect(finished).toBe(2);
      const statuses = (await h.db.knex('jobs').whereIn('id', jobs.map((j) => j.id)).pluck('status')) as string[];
      expect(statuses.sort()).toEqual(['Completed', 'Completed', 'Pending']);
      expect(await q.drainOnce()).toBe(0);
      expect(q.inFlight).toBe(0);
    });

    it('stops claiming when the tick\'s signal fires (the scheduler is stopping)', async () => {
      const q = h.queue({ concurrency: 1 });
      const scheduler = new AbortController();
      q.registerHandler('Deployment', async () => {
        scheduler.abort();
        return { status: 'completed' };
      });
      await q.enqueue([{ type: 'Deployment' }, { type: 'Deployment' }, { type: 'Deployment' }]);
      expect(await q.drainOnce(scheduler.signal)).toBe(1);
      expect(((await h.db.knex('jobs').pluck('status')) as string[]).sort()).toEqual(['Completed', 'Pending', 'Pending']);
      expect(await q.drainOnce(scheduler.signal)).toBe(0);
    });

    it('waits for jobs a drain claimed while stop() was already under way', async () => {
      const q = h.queue({ concurrency: 4 });
      q.registerHandler('Deployment', async () => {
        await sleep(150);
        return { status: 'completed' };
      });
      await q.enqueue([{ type: 'Deployment' }, { type: 'Deployment' }, { type: 'Deployment' }]);
      const drained = q.drainOnce(); // its claim query is in flight...
      const ok = await q.stop(5_000); // ...when the stop begins
      expect(ok).toBe(true);
      // Whatever that claim took has finished by the time stop() resolved: nothing is left Running.
      expect(q.inFlight).toBe(0);
      const statuses = (await h.db.knex('jobs').pluck('status')) as string[];
      expect(statuses).not.toContain('Running');
      expect(await drained).toBe(3);
      expect(statuses).toEqual(['Completed', 'Completed', 'Completed']);
    });

    it('aborts handlers at the bound and hands their jobs back without spending an attempt', async () => {
      const q = h.queue({ maxAttempts: 1 });
      q.registerHandler('Deployment', (_job, { signal }) => new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(new Error('stopped waiting for the target')), { once: true });
      }));
      const [job] = await q.enqueue({ type: 'Deployment' });
      const drained = q.drainOnce();
      await waitFor(() => q.inFlight === 1, 'the running job');
      const t0 = Date.now();
      expect(await q.stop(200)).toBe(false);
      expect(Date.now() - t0).toBeLessThan(1_500);
      await drained;
      expect(await h.job(job.id)).toMatchObject({ status: 'Pending', attempts: 0, lease_owner: null, last_error: 'interrupted by shutdown: stopped waiting for the target' });
    });
  });
});
