import type { Logger } from 'pino';
import { LOCK_KEYS, type Database } from '../db/database.js';

export interface LoopDef {
  name: string;
  intervalMs: number;
  /** Run once shortly after start (most loops), or wait a full interval first. */
  runOnStart?: boolean;
  /** Fraction of the interval each wait may vary by, so replicas do not fire in step. Default 0.1, at most 0.5. */
  jitter?: number;
  /**
   * Whether only one replica may run this loop at a time (PostgreSQL advisory lock).
   * The job processor is the exception: every replica claims work, SKIP LOCKED keeps them apart.
   */
  singleReplica?: boolean;
  /** The signal fires when the scheduler stops: wrap up and return. */
  tick: (signal: AbortSignal) => Promise<void>;
}

interface LoopState {
  def: LoopDef;
  key: number;
  timer: NodeJS.Timeout | null;
  running: Promise<void> | null;
  /** A run asked for (trigger) while one was in flight; starts as soon as it ends. */
  rerun: Promise<void> | null;
  lastStartedAt?: Date;
  lastFinishedAt?: Date;
  lastError?: string;
  runs: number;
  skipped: number;
}

const DEFAULT_JITTER = 0.1;
const FIRST_RUN_SPREAD_MS = 1000;
const RUN_HISTORY_DAYS = 7;

/** Milliseconds until a loop's next tick: a spread-out first run, then the interval +- jitter. */
export function nextDelay(def: Pick<LoopDef, 'intervalMs' | 'runOnStart' | 'jitter'>, first: boolean, random: () => number = Math.random): number {
  if (first && def.runOnStart !== false) return Math.round(random() * Math.min(def.intervalMs, FIRST_RUN_SPREAD_MS));
  const j = Math.min(0.5, Math.max(0, def.jitter ?? DEFAULT_JITTER));
  return Math.round(def.intervalMs * (1 - j + 2 * j * random()));
}

/**
 * A stable advisory-lock key per loop name, so replicas of any release agree on it:
 * a 32-bit FNV-1a hash of the name in a namespace above 2^32 (derived from
 * LOCK_KEYS.schedulerBase), clear of the kernel's other lock keys and still an exact JS number.
 */
export function loopLockKey(name: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(name, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return (LOCK_KEYS.schedulerBase >>> 12) * 2 ** 32 + h;
}

/**
 * Background loops. Each tick is single-flight in this process, jittered so
 * replicas do not fire in step, and (for singleReplica loops) guarded by an
 * advisory lock so one replica at a time does the work; those runs are recorded in
 * scheduler_runs. stop() cancels timers, signals running ticks and waits for
 * them within a bound.
 */
export class Scheduler {
  private loops = new Map<string, LoopState>();
  private readonly abort = new AbortController();
  private started = false;

  constructor(private readonly db: Database, private readonly log: Logger, private readonly replicaId: string) {}

  register(def: LoopDef): void {
    if (this.loops.has(def.name)) throw new Error(`Loop ${def.name} already registered`);
    if (!(def.intervalMs > 0)) throw new Error(`Loop ${def.name} needs a positive interval`);
    const state: LoopState = { def, key: loopLockKey(def.name), timer: null, running: null, rerun: null, runs: 0, skipped: 0 };
    this.loops.set(def.name, state);
    if (this.started) this.schedule(state, true);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const state of this.loops.values()) this.schedule(state, true);
  }

  /**
   * Asks for a run now (a "wake" signal, or a test). If a tick is in flight, one more
   * run follows it, so work that arrived meanwhile is not left for a whole interval.
   * Resolves when that run has finished.
   */
  async trigger(name: string): Promise<void> {
    const state = this.loops.get(name);
    if (!state) throw new Error(`No loop ${name}`);
    if (!state.running) return this.runTick(state);
    state.rerun ??= state.running.then(() => {
      state.rerun = null;
      return this.runTick(state);
    });
    return state.rerun;
  }

  status() {
    return [...this.loops.values()].map((s) => ({
      name: s.def.name,
      interval_ms: s.def.intervalMs,
      single_replica: s.def.singleReplica !== false,
      running: s.running !== null,
      runs: s.runs,
      skipped: s.skipped,
      last_started_at: s.lastStartedAt ?? null,
      last_finished_at: s.lastFinishedAt ?? null,
      last_error: s.lastError ?? null,
    }));
  }

  private schedule(state: LoopState, first: boolean): void {
    if (this.abort.signal.aborted) return;
    state.timer = setTimeout(() => {
      state.timer = null;
      void this.runTick(state).finally(() => this.schedule(state, false));
    }, nextDelay(state.def, first));
    state.timer.unref();
  }

  private runTick(state: LoopState): Promise<void> {
    if (this.abort.signal.aborted) return Promise.resolve();
    if (state.running) {
      state.skipped++;
      this.log.debug({ loop: state.def.name }, 'tick skipped: previous tick still running');
      return state.running;
    }
    const work = async () => {
      if (state.def.singleReplica === false) return this.execute(state, false);
      const ran = await this.db.withAdvisoryLock(state.key, async () => { await this.execute(state, true); return true; }, { wait: false });
      if (!ran) {
        state.skipped++;
        this.log.debug({ loop: state.def.name }, 'tick skipped: another replica is running this loop');
      }
    };
    // Assigned before any await, so a second call in the same turn sees it.
    state.running = work()
      .catch((err: unknown) => this.log.error({ loop: state.def.name, err }, 'scheduler loop error'))
      .finally(() => {
        state.running = null;
      });
    return state.running;
  }

  /** Runs one tick; a failing tick is logged and recorded, and the loop carries on. */
  private async execute(state: LoopState, record: boolean): Promise<void> {
    const startedAt = new Date();
    state.lastStartedAt = startedAt;
    const row = record
      ? ((await this.db.knex('scheduler_runs').insert({ loop: state.def.name, replica_id: this.replicaId, started_at: startedAt }).returning('id')) as { id: number }[])[0]
      : undefined;
    let error: string | undefined;
    try {
      await state.def.tick(this.abort.signal);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      this.log.error({ loop: state.def.name, err }, 'scheduler tick failed');
    }
    state.runs++;
    state.lastFinishedAt = new Date();
    state.lastError = error;
    if (!row) return;
    await this.db.knex('scheduler_runs').where({ id: row.id })
      .update({ finished_at: state.lastFinishedAt, outcome: error ? 'error' : 'ok', error: error?.slice(0, 2000) ?? null });
    // Keep the run history bounded; any replica may prune its loop's old rows.
    if (state.runs % 100 === 1) {
      await this.db.knex('scheduler_runs').where({ loop: state.def.name })
        .where('started_at', '<', new Date(Date.now() - RUN_HISTORY_DAYS * 86_400_000)).del();
    }
  }

  /** Graceful stop: no new ticks; waits up to timeoutMs for running ones. Returns false on timeout. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.abort.abort();
    for (const s of this.loops.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
    }
    const running = [...this.loops.values()].flatMap((s) => [s.running, s.rerun]).filter((p): p is Promise<void> => p !== null);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const ok = await Promise.race([Promise.all(running).then(() => true), timedOut]);
    clearTimeout(timer);
    if (!ok) this.log.warn({ timeout_ms: timeoutMs, running: this.status().filter((s) => s.running).map((s) => s.name) }, 'scheduler stop timed out with ticks still running');
    return ok;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}
