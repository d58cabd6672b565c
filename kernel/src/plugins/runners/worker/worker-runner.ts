import fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { Piscina } from 'piscina';
import type { Json } from '@certctl/sdk';
import type { PluginEntry } from '../../catalog.js';
import { PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker, type GrantedCapabilities, type PluginCall, type PluginRunner } from '../../host/contracts.js';
import { fromJsonText } from '../../host/json-value.js';
import { pluginEntryFile } from '../../host/plugin-entry-file.js';
import { BrokerPorts } from './broker-ports.js';
import type { PluginTask, PluginTaskOutcome } from './protocol.js';

export interface WorkerRunnerOptions {
  log: Logger;
  /** Threads kept when idle (0: the first call after idleTimeoutMs starts a thread). */
  minThreads?: number;
  maxThreads?: number;
  idleTimeoutMs?: number;
  /** V8 old-generation heap cap per thread; past it the thread dies and the call fails with memory_limit. */
  maxOldGenerationSizeMb?: number;
  maxResultBytes?: number;
  /** After the deadline, how long the worker may take to give up on its own before its thread is terminated. */
  abortGraceMs?: number;
  /** If a terminated thread still has not stopped after this long, the whole pool is replaced. */
  stuckPoolMs?: number;
  /** Calls waiting for a thread beyond this are refused (unavailable). */
  maxQueue?: number;
  /**
   * Calls a protocol plugin's thread runs at once (another plugin sets its own
   * with the manifest's `workerConcurrency`, else 1). A protocol request mostly
   * waits on host calls (kv, the database, signing), so one call per thread
   * would leave the thread idle while requests queue. Each call keeps its own
   * deadline and broker token, and a call that merely waits past its deadline is
   * given up in the worker without disturbing the others. Piscina cannot stop
   * one task among several on a thread, so a call still busy after its deadline
   * (a loop that never yields, which stalls its thread's other calls anyway)
   * has the pool replaced: the plugin's other calls in flight fail and their
   * callers retry. Plugins at one call per thread have each call stopped alone.
   */
  protocolTasksPerThread?: number;
}

export const WORKER_DEFAULTS = {
  minThreads: 0,
  maxThreads: 2,
  idleTimeoutMs: 60_000,
  maxOldGenerationSizeMb: 128,
  maxResultBytes: 2 * 1024 * 1024,
  abortGraceMs: 100,
  stuckPoolMs: 5_000,
  maxQueue: 1_000,
  protocolTasksPerThread: 8,
} as const;

/**
 * The compiled worker script. Piscina loads it in a fresh thread, so it must be
 * JavaScript: when the kernel itself runs from sources (tests), the script is
 * taken from kernel/dist, which `npm run build` (tsc -b) produces.
 */
export function pluginWorkerScript(): string {
  const here = fileURLToPath(new URL('./plugin-worker.js', import.meta.url));
  if (fs.existsSync(here)) return here;
  const dist = here.replace(/([\\/])kernel\1src\1/, '$1kernel$1dist$1');
  if (fs.existsSync(dist)) return dist;
  throw new Error(`the plugin worker script is not built (${dist}); run npm run build`);
}

/**
 * Runs a first-party plugin in a small Piscina pool of its own. A call is one
 * task with a deadline; the plugin's context talks to the kernel's capability
 * broker over its thread's port with the call's token (broker-ports.ts).
 * A plugin that throws fails that call; a
 * thread that dies (exit, uncaught error, out of memory) or overruns its
 * deadline is discarded and Piscina starts a fresh one for the next call.
 */
export class WorkerRunner implements PluginRunner {
  readonly tier = 'worker' as const;
  private pool: Piscina | null = null;
  private closed = false;
  private readonly opts: Required<Omit<WorkerRunnerOptions, 'log'>> & { log: Logger };
  private entryUrl: string | null = null;
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Calls one thread runs at once. */
  private readonly tasksPerThread: number;
  /** Calls running at once, all threads together. */
  private readonly slots: number;
  private readonly brokerPorts: BrokerPorts;

  constructor(private readonly entry: PluginEntry, private readonly grants: GrantedCapabilities, private readonly broker: CapabilityBroker, opts: WorkerRunnerOptions) {
    this.opts = { ...WORKER_DEFAULTS, ...opts, log: opts.log.child({ plugin_id: entry.id, runner: 'worker' }) };
    this.tasksPerThread = Math.max(1, entry.manifest?.workerConcurrency ?? (entry.kind === 'protocol' ? this.opts.protocolTasksPerThread : 1));
    this.slots = Math.max(1, this.opts.maxThreads) * this.tasksPerThread;
    this.brokerPorts = new BrokerPorts(broker, this.opts.log);
  }

  private fail(code: PluginCallError['code'], message: string): PluginCallError {
    return new PluginCallError(code, message, this.entry.id);
  }

  private ensurePool(): Piscina {
    if (this.pool) return this.pool;
    if (!this.entryUrl) {
      const resolved = pluginEntryFile(this.entry, 'worker');
      if ('reason' in resolved) throw this.fail('unavailable', `plugin ${this.entry.id} cannot run in a worker: ${resolved.reason}`);
      this.entryUrl = pathToFileURL(resolved.file).href;
    }
    let filename: string;
    try {
      filename = pluginWorkerScript();
    } catch (err) {
      throw this.fail('unavailable', (err as Error).message);
    }
    const o = this.opts;
    this.pool = new Piscina({
      filename,
      minThreads: o.minThreads,
      maxThreads: Math.max(1, o.maxThreads),
      idleTimeout: o.idleTimeoutMs,
      // Calls queue in the runner (see acquire); Piscina's own queue only bridges a thread starting up.
      maxQueue: this.slots,
      concurrentTasksPerWorker: this.tasksPerThread,
      // Message-based hand-off: Atomics waits between tasks cost ~1 ms at p99 here (see docs/benchmarks.md).
      atomics: 'disabled',
      resourceLimits: { maxOldGenerationSizeMb: o.maxOldGenerationSizeMb },
      // First-party code still gets no kernel environment (database URL, keys).
      env: {},
      closeTimeout: 2_000,
    });
    this.pool.on('error', (err: unknown) => this.opts.log.warn({ err }, 'plugin worker pool error'));
    // A thread hands over its broker port this way (broker-link.ts).
    this.pool.on('message', (message: unknown) => this.brokerPorts.attach(message));
    return this.pool;
  }

  /** Drops a pool whose thread would not stop; calls still in it fail, the next call gets a new pool. */
  private replacePool(pool: Piscina, why: string): void {
    if (this.pool !== pool) return;
    this.pool = null;
    this.opts.log.warn({ why }, 'replacing the plugin worker pool');
    void pool.destroy().catch(() => {});
  }

  /**
   * Calls wait here, not in Piscina's queue: a task is handed to Piscina only
   * when a thread slot is free. (Piscina with minThreads 0 does not start a
   * thread for queued tasks after it terminated busy ones on abort, so a queued
   * call would wait forever.) A slot is held until Piscina settles the task, so
   * a thread being terminated still counts.
   */
  private acquire(start: () => void): boolean {
    if (this.active < this.slots) {
      this.active++;
      start();
      return true;
    }
    if (this.waiting.length >= this.opts.maxQueue) return false;
    this.waiting.push(start);
    return true;
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  call(c: PluginCall): Promise<Json> {
    if (this.closed) return Promise.reject(this.fail('unavailable', `plugin ${this.entry.id}: the runner is closed`));
    const remaining = c.deadline - Date.now();
    if (remaining <= 0) return Promise.reject(this.fail('timeout', `${this.entry.id}.${c.method} had no time left before its deadline`));
    try {
      this.ensurePool();
    } catch (err) {
      return Promise.reject(err);
    }
    const label = `${this.entry.id}.${c.method}`;

    return new Promise<Json>((resolve, reject) => {
      let settled = false;
      let started = false;
      let taskDone = false;
      const abort = new AbortController();
      const timers: NodeJS.Timeout[] = [];
      let endBrokerCall: () => void = () => {};
      let taskPool: Piscina | null = null;
      // Piscina never puts a second task on a thread running an abortable one.
      const abortable = this.tasksPerThread === 1;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        fn();
      };
      const finishTask = () => {
        if (taskDone) return;
        taskDone = true;
        for (const t of timers) clearTimeout(t);
        endBrokerCall();
        this.release();
      };

      // At the deadline the caller hears `timeout` at once; a running task gets a
      // moment to give up by itself, then its thread is terminated, then (if even
      // that hangs) the whole pool is replaced and the slot given back.
      timers.push(setTimeout(() => {
        settle(() => reject(this.fail('timeout', `${label} did not finish within ${Math.round(remaining)} ms`)));
        if (!started) return;
        timers.push(setTimeout(() => {
          if (taskDone) return;
          if (!abortable) {
            if (taskPool) this.replacePool(taskPool, `${label} was still busy after its deadline`);
            finishTask();
            return;
          }
          abort.abort();
          timers.push(setTimeout(() => {
            if (taskDone) return;
            const stuck = this.pool;
            if (stuck) this.replacePool(stuck, `${label} did not stop after termination`);
            finishTask();
          }, this.opts.stuckPoolMs));
        }, this.opts.abortGraceMs));
      }, remaining));

      const start = () => {
        // Timed out (or the runner closed) while waiting for a slot: give it straight back.
        if (settled || this.closed) {
          this.release();
          if (this.closed) settle(() => reject(this.fail('unavailable', `${label}: the plugin runner was stopped`)));
          return;
        }
        started = true;
        let pool: Piscina;
        try {
          pool = taskPool = this.ensurePool();
        } catch (err) {
          this.release();
          taskDone = true;
          settle(() => reject(err));
          return;
        }
        const brokerCtx: BrokerCallContext = { pluginId: this.entry.id, instanceId: c.instanceId, grants: this.grants, deadline: c.deadline };
        const brokerCall = this.brokerPorts.open(brokerCtx);
        endBrokerCall = brokerCall.end;
        const task: PluginTask = {
          pluginId: this.entry.id,
          entryUrl: this.entryUrl!,
          kind: this.entry.kind ?? '',
          maxResultBytes: this.opts.maxResultBytes,
          method: c.method,
          request: c.request,
          config: c.config,
          instanceId: c.instanceId,
          deadline: c.deadline,
          token: brokerCall.token,
        };
        let run: Promise<PluginTaskOutcome>;
        try {
          run = pool.run(task, abortable ? { signal: abort.signal } : {}) as Promise<PluginTaskOutcome>;
        } catch (err) {
          finishTask();
          settle(() => reject(this.fail('unavailable', `${label}: ${(err as Error).message}`)));
          return;
        }
        run.then(
          (outcome) => {
            logLines(this.broker, brokerCtx, outcome?.logs);
            finishTask();
            settle(() => {
              if (!outcome || typeof outcome !== 'object') return reject(this.fail('crashed', `${label}: the worker returned no outcome`));
              if (!outcome.ok) return reject(this.fail(outcome.code, `${label}: ${outcome.message}`));
              const parsed = fromJsonText(outcome.json, this.opts.maxResultBytes);
              if (!parsed.ok) return reject(this.fail('bad_result', `${label}: ${parsed.reason}`));
              resolve(parsed.value);
            });
          },
          (err: unknown) => {
            finishTask();
            settle(() => reject(this.crashError(label, c.method, err)));
          },
        );
      };

      if (!this.acquire(start)) {
        for (const t of timers) clearTimeout(t);
        settle(() => reject(this.fail('unavailable', `${label}: too many calls are waiting for this plugin (${this.opts.maxQueue})`)));
      }
    });
  }

  /** What a rejected Piscina task means for the caller. */
  private crashError(label: string, method: string, err: unknown): PluginCallError {
    const e = err as { name?: string; code?: string; message?: string };
    if (e?.name === 'AbortError') return this.fail('timeout', `${label} did not finish by its deadline`);
    if (e?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      this.opts.log.warn({ method }, 'plugin worker ran out of memory; thread replaced');
      return this.fail('memory_limit', `${label}: the worker exceeded its ${this.opts.maxOldGenerationSizeMb} MB heap limit and was stopped`);
    }
    if (this.closed) return this.fail('unavailable', `${label}: the plugin runner was stopped`);
    if (e?.message === 'Terminating worker thread') return this.fail('unavailable', `${label}: its thread was stopped (a call sharing it was still busy after its deadline)`);
    this.opts.log.warn({ method, err: e?.message }, 'plugin worker thread died; thread replaced');
    return this.fail('crashed', `${label}: the worker thread died (${String(e?.message ?? err).slice(0, 300)}); the call failed and the thread was replaced`);
  }

  async close(): Promise<void> {
    this.closed = true;
    // Waiting calls get their slot and see the runner is closed.
    for (const start of this.waiting.splice(0)) start();
    const pool = this.pool;
    this.pool = null;
    if (pool) await pool.destroy().catch(() => {});
    this.brokerPorts.close();
  }
}

/** Most lines an outcome may carry (the broker's per-call line limit applies on top). */
const MAX_OUTCOME_LOGS = 1000;

/**
 * The log lines a call returned with its outcome, through the broker like the
 * lines posted during the call (same sanitising and per-call limit). Only `log`
 * ops are taken from there: anything else is ignored.
 */
function logLines(broker: CapabilityBroker, ctx: BrokerCallContext, logs: unknown): void {
  if (!Array.isArray(logs)) return;
  for (const op of logs.slice(0, MAX_OUTCOME_LOGS)) {
    if ((op as { op?: unknown } | null)?.op !== 'log') continue;
    broker.handle(ctx, op as BrokerOp).catch(() => {});
  }
}
