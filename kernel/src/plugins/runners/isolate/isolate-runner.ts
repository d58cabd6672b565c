import type { ChildProcess } from 'node:child_process';
import type { Json, PluginKind } from '@certctl/sdk';
import type { Logger } from 'pino';
import { resultProblem } from '../../host/contract-shapes.js';
import {
  PluginCallError, type BrokerCallContext, type CapabilityBroker, type GrantedCapabilities, type PluginCall, type PluginFailureCode, type PluginRunner,
} from '../../host/contracts.js';
import { checkBrokerOp, parseUntrustedJson } from './broker-op-check.js';
import type { ChildMessage, OpResultMessage, ParentMessage, SandboxLimits } from './protocol.js';
import { defaultSandboxEntry, launchSandbox } from './sandbox-launcher.js';

/**
 * The third-party tier: each plugin runs in an isolated-vm isolate inside its own
 * sandbox child process. This side (in the kernel) starts the process lazily,
 * correlates calls, answers the plugin's host operations through the
 * CapabilityBroker, and enforces every deadline itself too: a child that does not
 * answer by deadline + grace is killed and replaced, so a wedged sandbox can never
 * hold a kernel call (or the kernel's event loop) hostage.
 */

export interface IsolateRunnerOptions {
  pluginId: string;
  /** The plugin's bundled isolate entry (manifest `entry.isolate`) as text, read by the kernel. */
  source: string;
  /** Name shown in the plugin's stack traces (e.g. `my-plugin/dist/isolate.js`). */
  filename?: string;
  /** The manifest kind; when given, the exported object's `kind` must agree and results are checked against the contract. */
  kind?: PluginKind | null;
  grants: GrantedCapabilities;
  broker: CapabilityBroker;
  /** Isolate heap limit, MB (default 64). */
  memoryLimitMb?: number;
  /** Longest stretch of plugin code between yields, ms (default 2000); past it the call fails with `cpu_limit`. */
  cpuTimeoutMs?: number;
  /** Result size cap, UTF-8 bytes (default 1 MiB). */
  maxResultBytes?: number;
  /** Size cap of one host operation's arguments (default 2 MiB). */
  maxOpBytes?: number;
  maxOpsPerCall?: number;
  maxPendingTimers?: number;
  maxTimersPerCall?: number;
  /** How long after a call's deadline the kernel waits for the child before killing it (default 1000 ms). */
  deadlineGraceMs?: number;
  /** Restart delay after consecutive crashes: initial * 2^(n-1), capped (default 100 ms .. 10 s). */
  restartBackoffMs?: { initial: number; max: number };
  /** How long the child may take to load the plugin (default 10 s). */
  startTimeoutMs?: number;
  log?: Logger;
  /** The child's entry script; tests point it at a misbehaving stand-in. Default: the compiled sandbox-process.js. */
  sandboxEntry?: string;
  /** Run the child under Node's permission model when available (default true). */
  restrictProcess?: boolean;
}

interface InFlight {
  call: PluginCall;
  resolve(value: Json): void;
  reject(err: PluginCallError): void;
  graceTimer: NodeJS.Timeout;
  ops: number;
  /** One broker context per call: the broker keys its per-call log and refusal caps on it. */
  brokerCtx: BrokerCallContext;
}

interface SandboxChild {
  proc: ChildProcess;
  ready: Promise<void>;
  settleReady(err?: PluginCallError): void;
  inflight: Map<number, InFlight>;
  stderrTail: string;
  exited: boolean;
  /** The kernel ended it (close, hang, load failure): its exit is not a crash of its own. */
  stopping: boolean;
}

const KNOWN_CODES = new Set<PluginFailureCode>([
  'timeout', 'cpu_limit', 'memory_limit', 'crashed', 'plugin_error', 'bad_result', 'capability_denied', 'not_supported', 'unavailable',
]);
const METHOD_NAME = /^[a-z][A-Za-z0-9]{0,63}$/;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}...` : s);

export class IsolateRunner implements PluginRunner {
  readonly tier = 'isolate' as const;
  readonly pluginId: string;
  private readonly limits: SandboxLimits;
  private readonly grace: number;
  private readonly backoff: { initial: number; max: number };
  private readonly startTimeout: number;
  private child: SandboxChild | null = null;
  private starting: Promise<SandboxChild> | null = null;
  private nextCallId = 1;
  private crashes = 0;
  private lastCrashAt = 0;
  /** Set when the plugin's entry cannot load at all (syntax error): no restart can help. */
  private broken: string | null = null;
  private closed = false;

  constructor(private readonly opts: IsolateRunnerOptions) {
    this.pluginId = opts.pluginId;
    this.limits = {
      memoryLimitMb: Math.max(8, opts.memoryLimitMb ?? 64),
      cpuTimeoutMs: opts.cpuTimeoutMs ?? 2000,
      maxResultBytes: opts.maxResultBytes ?? 1024 * 1024,
      maxOpBytes: opts.maxOpBytes ?? 2 * 1024 * 1024,
      maxOpsPerCall: opts.maxOpsPerCall ?? 10_000,
      maxPendingTimers: opts.maxPendingTimers ?? 100,
      maxTimersPerCall: opts.maxTimersPerCall ?? 1000,
    };
    this.grace = opts.deadlineGraceMs ?? 1000;
    this.backoff = opts.restartBackoffMs ?? { initial: 100, max: 10_000 };
    this.startTimeout = opts.startTimeoutMs ?? 10_000;
  }

  private error(code: PluginFailureCode, message: string): PluginCallError {
    return new PluginCallError(code, message, this.pluginId);
  }

  async call(call: PluginCall): Promise<Json> {
    if (this.closed) throw this.error('unavailable', 'the plugin runner is closed');
    if (call.pluginId !== this.pluginId) throw this.error('unavailable', `this runner hosts ${this.pluginId}, not ${call.pluginId}`);
    if (!METHOD_NAME.test(call.method) || call.method in Object.prototype) throw this.error('not_supported', `the plugin does not implement ${call.method}`);
    if (Date.now() >= call.deadline) throw this.error('timeout', `${call.method} did not finish by its deadline`);
    const requestJson = JSON.stringify(call.request ?? null);
    const configJson = JSON.stringify(call.config ?? {});
    const child = await this.ensureChild(call.deadline);
    if (child.exited) throw this.error('crashed', 'the sandbox process exited before the call could start');
    const id = this.nextCallId++;
    return new Promise<Json>((resolve, reject) => {
      const graceTimer = setTimeout(() => this.onHung(child, id), Math.max(0, call.deadline - Date.now()) + this.grace);
      child.inflight.set(id, {
        call, resolve, reject, graceTimer, ops: 0,
        brokerCtx: { pluginId: this.pluginId, instanceId: call.instanceId, grants: this.opts.grants, deadline: call.deadline },
      });
      this.send(child, {
        t: 'call', id, method: call.method, requestJson, configJson, instanceId: call.instanceId, deadline: call.deadline,
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const child = this.child;
    this.child = null;
    if (child) this.kill(child, () => this.error('unavailable', 'the plugin runner was closed'));
  }

  // ---- the child process -------------------------------------------------

  private async ensureChild(deadline: number): Promise<SandboxChild> {
    if (this.broken) throw this.error('unavailable', this.broken);
    const current = this.child;
    const starting = current && !current.exited
      ? current.ready.then(() => current)
      : (this.starting ??= this.startChild().finally(() => { this.starting = null; }));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.error('unavailable', 'the sandbox process did not start before the call\'s deadline')), Math.max(0, deadline - Date.now()));
    });
    try {
      return await Promise.race([starting, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async startChild(): Promise<SandboxChild> {
    // Consecutive crashes back off exponentially, so a plugin that kills its sandbox cannot make the kernel fork in a loop.
    if (this.crashes > 0) {
      const wait = Math.min(this.backoff.initial * 2 ** (this.crashes - 1), this.backoff.max) - (Date.now() - this.lastCrashAt);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    if (this.closed) throw this.error('unavailable', 'the plugin runner is closed');
    if (this.broken) throw this.error('unavailable', this.broken);
    let proc: ChildProcess;
    try {
      proc = launchSandbox({ entry: this.opts.sandboxEntry ?? defaultSandboxEntry(), restrict: this.opts.restrictProcess ?? true });
    } catch (err) {
      throw this.error('unavailable', `the sandbox process could not start: ${(err as Error).message}`);
    }
    let settleReady!: (err?: PluginCallError) => void;
    const ready = new Promise<void>((resolve, reject) => {
      settleReady = (err) => (err ? reject(err) : resolve());
    });
    ready.catch(() => {});
    const child: SandboxChild = { proc, ready, settleReady, inflight: new Map(), stderrTail: '', exited: false, stopping: false };
    this.child = child;
    // An idle sandbox must not keep the kernel process alive on its own (calls in flight hold timers).
    proc.unref();
    proc.channel?.unref();

    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => { child.stderrTail = (child.stderrTail + chunk).slice(-2000); });
    proc.on('message', (msg: unknown) => this.onMessage(child, msg));
    // 'close' comes after 'exit' once stderr is drained, so the crash report has the child's last words.
    proc.on('close', (code, signal) => this.onExit(child, code, signal));
    proc.on('error', (err) => {
      this.opts.log?.warn({ err, pluginId: this.pluginId }, 'plugin sandbox process error');
      if (!child.exited) this.kill(child, () => this.error('crashed', `the sandbox process failed: ${err.message}`));
    });
    const startTimer = setTimeout(() => {
      this.recordCrash();
      child.settleReady(this.error('unavailable', `the sandbox did not load the plugin within ${this.startTimeout} ms`));
      this.kill(child, () => this.error('unavailable', 'the sandbox did not start'));
    }, this.startTimeout);
    this.send(child, {
      t: 'init', pluginId: this.pluginId, kind: this.opts.kind ?? null, source: this.opts.source,
      filename: this.opts.filename ?? `plugin:${this.pluginId}/isolate.js`, limits: this.limits,
    });
    try {
      await ready;
    } finally {
      clearTimeout(startTimer);
    }
    return child;
  }

  private send(child: SandboxChild, msg: ParentMessage): void {
    if (child.exited || !child.proc.connected) return;
    // A failed send means the channel is gone; the exit handler fails the calls.
    child.proc.send(msg, (err) => { if (err) this.opts.log?.debug({ err, pluginId: this.pluginId }, 'sandbox IPC send failed'); });
  }

  /** Ends the child now; every call still on it fails with the error `why` gives for its id. */
  private kill(child: SandboxChild, why: (id: number) => PluginCallError): void {
    if (this.child === child) this.child = null;
    child.stopping = true;
    for (const [id, entry] of child.inflight) {
      clearTimeout(entry.graceTimer);
      entry.reject(why(id));
    }
    child.inflight.clear();
    // Calls still waiting for the child to start get the same reason.
    child.settleReady(why(0));
    if (!child.exited) child.proc.kill('SIGKILL');
  }

  /** A call outlived its deadline + grace: the child is wedged (or lying). Kill it; the next call gets a new one. */
  private onHung(child: SandboxChild, id: number): void {
    if (!child.inflight.has(id)) return;
    const method = child.inflight.get(id)?.call.method ?? 'the call';
    this.opts.log?.warn({ pluginId: this.pluginId, method }, 'plugin sandbox did not answer by the deadline; killing it');
    this.recordCrash();
    this.kill(child, (other) => other === id
      ? this.error('timeout', `${method} did not finish by its deadline; the sandbox process was killed and will be replaced`)
      : this.error('crashed', 'the sandbox process was killed because another call on it hung'));
  }

  private onExit(child: SandboxChild, code: number | null, signal: NodeJS.Signals | null): void {
    if (child.exited) return;
    child.exited = true;
    if (this.child === child) this.child = null;
    const planned = child.stopping;
    if (!planned) this.recordCrash();
    const tail = child.stderrTail.trim();
    const oom = /out of memory|heap limit|allocation failed/i.test(tail);
    const how = signal ? `signal ${signal}` : `code ${code}`;
    child.settleReady(this.error('unavailable', `the sandbox process exited while starting (${how})${tail ? `: ${clip(tail, 300)}` : ''}`));
    if (child.inflight.size > 0 || !planned) this.opts.log?.warn({ pluginId: this.pluginId, code, signal, stderr: clip(tail, 500) }, 'plugin sandbox process exited');
    this.kill(child, () => oom
      ? this.error('memory_limit', `the sandbox process ran out of memory (${how})`)
      : this.error('crashed', `the sandbox process exited (${how})`));
  }

  private recordCrash(): void {
    this.crashes++;
    this.lastCrashAt = Date.now();
  }

  // ---- messages from the child -------------------------------------------

  private onMessage(child: SandboxChild, raw: unknown): void {
    if (child.exited || typeof raw !== 'object' || raw === null) return;
    const msg = raw as ChildMessage;
    switch (msg.t) {
      case 'ready':
        child.settleReady();
        return;
      case 'initFailed':
        this.broken = `the plugin's isolate entry does not load: ${clip(String(msg.message), 500)}`;
        child.settleReady(this.error('unavailable', this.broken));
        this.kill(child, () => this.error('unavailable', this.broken ?? 'the plugin does not load'));
        return;
      case 'done':
        return this.onDone(child, msg);
      case 'op':
        return this.onOp(child, msg);
      default:
        this.opts.log?.warn({ pluginId: this.pluginId }, 'plugin sandbox sent an unknown message; ignored');
    }
  }

  private onDone(child: SandboxChild, msg: Extract<ChildMessage, { t: 'done' }>): void {
    const entry = child.inflight.get(msg.id);
    if (!entry) return;
    child.inflight.delete(msg.id);
    clearTimeout(entry.graceTimer);
    this.crashes = 0;
    const { method } = entry.call;
    if (msg.ok !== true) {
      const code = KNOWN_CODES.has(msg.code as PluginFailureCode) ? (msg.code as PluginFailureCode) : 'plugin_error';
      entry.reject(this.error(code, clip(typeof msg.message === 'string' ? msg.message : `${method} failed`, 2000)));
      return;
    }
    if (typeof msg.json !== 'string' || Buffer.byteLength(msg.json, 'utf8') > this.limits.maxResultBytes) {
      entry.reject(this.error('bad_result', `result is over the ${this.limits.maxResultBytes}-byte limit`));
      return;
    }
    let value: Json;
    try {
      value = parseUntrustedJson(msg.json);
    } catch {
      entry.reject(this.error('bad_result', 'result is not valid JSON'));
      return;
    }
    const problem = this.opts.kind ? resultProblem(this.opts.kind, method, value) : null;
    if (problem) entry.reject(this.error('bad_result', problem));
    else entry.resolve(value);
  }

  private onOp(child: SandboxChild, msg: Extract<ChildMessage, { t: 'op' }>): void {
    const { callId, opId } = msg;
    if (!Number.isSafeInteger(opId) || opId < 0) return;
    const reply = (answer: DistributiveOmit<OpResultMessage, 't' | 'callId' | 'opId'>) => {
      // Answers for calls that ended in the meantime are dropped, not delivered late.
      if (opId === 0 || !child.inflight.has(callId)) return;
      this.send(child, { t: 'opResult', callId, opId, ...answer } as OpResultMessage);
    };
    const entry = child.inflight.get(callId);
    if (!entry) {
      // The call is over (or never existed): its plugin code reaches nothing any more.
      this.opts.log?.debug({ pluginId: this.pluginId, callId }, 'refused a host operation for a call that has ended');
      return;
    }
    if (++entry.ops > this.limits.maxOpsPerCall) {
      return reply({ ok: false, hostRefusal: true, code: 'capability_denied', message: `more than ${this.limits.maxOpsPerCall} host operations in one call` });
    }
    let parsed: Json;
    try {
      if (typeof msg.opJson !== 'string' || Buffer.byteLength(msg.opJson, 'utf8') > this.limits.maxOpBytes) throw new Error('too large');
      parsed = parseUntrustedJson(msg.opJson);
    } catch {
      return reply({ ok: false, hostRefusal: false, message: 'the host operation is not readable JSON within the size limit' });
    }
    const checked = checkBrokerOp(parsed);
    if (!checked.ok) return reply({ ok: false, hostRefusal: false, message: checked.reason });
    this.opts.broker.handle(entry.brokerCtx, checked.op).then(
      (value) => {
        let valueJson: string | null = null;
        try {
          valueJson = value === undefined ? null : JSON.stringify(value);
        } catch {
          return reply({ ok: false, hostRefusal: false, message: `${checked.op.op}: the host produced an unreadable answer` });
        }
        reply({ ok: true, valueJson });
      },
      (err: unknown) => {
        if (err instanceof PluginCallError) return reply({ ok: false, hostRefusal: true, code: err.code, message: err.message });
        const e = err as { message?: unknown; code?: unknown };
        reply({
          ok: false, hostRefusal: false,
          ...(typeof e?.code === 'string' ? { code: e.code } : {}),
          message: typeof e?.message === 'string' ? e.message : `${checked.op.op} failed`,
        });
      },
    );
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The factory the plugin host wires in for third-party plugins. */
export function createIsolateRunner(opts: IsolateRunnerOptions): IsolateRunner {
  return new IsolateRunner(opts);
}
