import type { Logger } from 'pino';
import { LOCK_KEYS, type Database } from '../db/database.js';

export interface LoopDef {
  name: string;
  intervalMs: number;
  /** Run once shortly after start (most loops), or wait a full interval first. */
  runOnStart?: boolean;
  /**
   * Whether only one replica may run this loop at a time (PostgreSQL advisory lock).
   * The job processor is the exception: every replica claims work, SKIP LOCKED keeps them apart.
   */
  singleReplica?: boolean;
  tick: (signal: AbortSignal) => Promise<void>;
}

interface LoopState {
  def: LoopDef;
  key: number;
  timer: NodeJS.Timeout | null;
  running: Promise<void> | null;
  lastStartedAt?: Date;
  lastFinishedAt?: Date;
  lastError?: string;
  runs: number;
  skipped: number;
}

/** Stable lock key per loop name, so replicas of any release agree on it. */
function loopLockKey(name: string): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) | 0;
  return LOCK_KEYS.schedulerBase + (Math.abs(h) % 4096);
}

/**
 * Background loops. Each tick is single-flight in this process, jittered so
 * replicas do not fire in step, and (for singleReplica loops) guarded by an
 * advisory lock so one replica at a time does the work; runs are recorded in
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
    this.loops.set(def.name, { def, key: loopLockKey(def.name), timer: null, running: null, runs: 0, skipped: 0 });
    if (this.started) this.schedule(this.loops.get(def.name)!, true);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const state of this.loops.values()) this.schedule(state, true);
  }

  /** Runs a loop's tick now (still single-flight and locked); used by "wake" signals and tests. */
  async trigger(name: string): Promise<void> {
    const state = this.loops.get(name);
    if (!state) throw new Error(`No loop ${name}`);
    await this.runTick(state);
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
    const jitter = 0.9 + Math.random() * 0.2;
    const delay = first && state.def.runOnStart !== false ? 200 + Math.random() * 800 : state.def.intervalMs * jitter;
    state.timer = setTimeout(() => {
      void this.runTick(state).finally(() => this.schedule(state, false));
    }, delay);
    state.timer.unref();
  }

  private async runTick(state: LoopState): Promise<void> {
    if (this.abort.signal.aborted) return;
    if (state.running) {
      state.skipped++;
      this.log.debug({ loop: state.def.name }, 'tick skipped: previous tick still running');
      return state.running;
    }
    const work = async () => {
      const exec = async () => {
        const startedAt = new Date();
        state.lastStartedAt = startedAt;
        const record = state.def.singleReplica !== false;
        const [row] = record
          ? ((await this.db.knex('scheduler_runs').insert({ loop: state.def.name, replica_id: this.replicaId, started_at: startedAt }).returning('id')) as { id: number }[])
          : [undefined];
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
        if (row) {
          await this.db.knex('scheduler_runs').where({ id: row.id }).update({ finished_at: state.lastFinishedAt, outcome: error ? 'error' : 'ok', error: error ?? null });
        }
      };
      if (state.def.singleReplica === false) await exec();
      else {
        const ran = await this.db.withAdvisoryLock(state.key, async () => { await exec(); return true; }, { wait: false });
        if (!ran) state.skipped++;
      }
    };
    state.running = work()
      .catch((err: unknown) => this.log.error({ loop: state.def.name, err }, 'scheduler loop error'))
      .finally(() => {
        state.running = null;
      });
    return state.running;
  }

  /** Graceful stop: no new ticks; waits up to timeoutMs for running ones. Returns false on timeout. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.abort.abort();
    for (const s of this.loops.values()) if (s.timer) clearTimeout(s.timer);
    const running = [...this.loops.values()].map((s) => s.running).filter(Boolean) as Promise<void>[];
    const all = Promise.all(running).then(() => true);
    const timer = new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref());
    const ok = await Promise.race([all, timer]);
    if (!ok) this.log.warn({ timeout_ms: timeoutMs }, 'scheduler stop timed out with ticks still running');
    return ok;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}
