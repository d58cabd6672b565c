/**
 * Inside the sandbox process: one isolated-vm isolate for the plugin, with its
 * bridge and entry script compiled once. Every call gets a fresh context (so
 * nothing a call does to globals or prototypes outlives it), runs with a CPU
 * timeout on every entry into the isolate, a wall-clock deadline, and its own
 * timers and op budget. When the isolate hits its memory limit isolated-vm
 * disposes it; the calls on it fail with `memory_limit` and the next call gets
 * a new isolate.
 */
import fs from 'node:fs';
import ivm from 'isolated-vm';
import { BOOTSTRAP_SOURCE, wrapPluginSource } from './isolate-bootstrap.js';
import type { CallMessage, CallOutcome, ChildMessage, InitMessage, OpResultMessage } from './protocol.js';

/** Codes the bridge inside the isolate may report by itself; host refusal codes pass only if the host raised them in that call. */
const BRIDGE_CODES = new Set(['plugin_error', 'bad_result', 'not_supported', 'unavailable']);

interface Slot {
  isolate: ivm.Isolate;
  bridge: ivm.Script;
  entry: ivm.Script;
  calls: Set<ActiveCall>;
}

interface ActiveCall {
  id: number;
  method: string;
  deadline: number;
  slot: Slot | null;
  context: ivm.Context | null;
  control: ivm.Reference<(...args: unknown[]) => unknown> | null;
  timers: Map<number, NodeJS.Timeout>;
  timersTotal: number;
  ops: number;
  openOps: Set<number>;
  refusalCodes: Set<string>;
  deadlineTimer: NodeJS.Timeout | undefined;
  ended: boolean;
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}...` : s);
const fail = (code: string, message: string): CallOutcome => ({ ok: false, code, message });
const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class PluginIsolate {
  private slot: Slot | null = null;
  private preparing: Promise<Slot> | null = null;
  private readonly calls = new Map<number, ActiveCall>();
  private readonly settingsJson: string;

  constructor(private readonly init: InitMessage, private readonly out: (msg: ChildMessage) => void) {
    this.settingsJson = JSON.stringify({ kind: init.kind, limits: init.limits });
  }

  /** Creates the isolate and compiles the bridge and the plugin's entry; a syntax error rejects. */
  prepare(): Promise<Slot> {
    if (this.slot && !this.slot.isolate.isDisposed) return Promise.resolve(this.slot);
    this.preparing ??= this.createSlot().finally(() => { this.preparing = null; });
    return this.preparing;
  }

  private async createSlot(): Promise<Slot> {
    const isolate = new ivm.Isolate({
      memoryLimit: this.init.limits.memoryLimitMb,
      // V8 lost control of the isolate: the only safe move is to end this process; the kernel replaces it.
      onCatastrophicError: (message) => {
        try { fs.writeSync(2, `certctl sandbox: catastrophic isolate error: ${message}\n`); } catch { /* exiting anyway */ }
        process.abort();
      },
    });
    try {
      const bridge = await isolate.compileScript(BOOTSTRAP_SOURCE, { filename: 'certctl:sandbox-bridge.js' });
      const entry = await isolate.compileScript(wrapPluginSource(this.init.source), { filename: this.init.filename });
      this.slot = { isolate, bridge, entry, calls: new Set() };
      return this.slot;
    } catch (err) {
      if (!isolate.isDisposed) isolate.dispose();
      throw err;
    }
  }

  /** The remaining CPU allowance of one entry into the isolate, never past the call's deadline by much. */
  private entryTimeout(call: ActiveCall): number {
    return Math.max(1, Math.min(this.init.limits.cpuTimeoutMs, call.deadline - Date.now() + 20));
  }

  async startCall(msg: CallMessage): Promise<void> {
    const call: ActiveCall = {
      id: msg.id, method: msg.method, deadline: msg.deadline, slot: null, context: null, control: null,
      timers: new Map(), timersTotal: 0, ops: 0, openOps: new Set(), refusalCodes: new Set(), deadlineTimer: undefined, ended: false,
    };
    this.calls.set(call.id, call);
    // A call that never settles (a promise nobody resolves) ends here without touching the isolate.
    call.deadlineTimer = setTimeout(() => this.finish(call, fail('timeout', `${msg.method} did not finish by its deadline`)), Math.max(0, msg.deadline - Date.now()));

    let slot: Slot;
    try {
      slot = await this.prepare();
    } catch (err) {
      this.finish(call, fail('unavailable', `the plugin's isolate could not be prepared: ${clip(messageOf(err), 500)}`));
      return;
    }
    if (call.ended) return;
    call.slot = slot;
    slot.calls.add(call);
    try {
      const context = await slot.isolate.createContext();
      call.context = context;
      if (call.ended) return void this.release(call);
      const bridge = await slot.bridge.run(context, { reference: true, timeout: this.entryTimeout(call) }) as ivm.Reference<(...args: unknown[]) => unknown>;
      const send = new ivm.Callback((kind: unknown, a: unknown, b: unknown) => this.fromIsolate(call, kind, a, b), { ignored: true });
      call.control = await bridge.apply(undefined, [send, this.settingsJson], { result: { reference: true }, timeout: this.entryTimeout(call) }) as ivm.Reference<(...args: unknown[]) => unknown>;
      bridge.release();
      if (call.ended) return void this.release(call);

      const factory = await slot.entry.run(context, { reference: true, timeout: this.entryTimeout(call) }) as ivm.Reference<unknown>;
      const loaded = await call.control.apply(undefined, ['load', factory.derefInto()], { timeout: this.entryTimeout(call) });
      factory.release();
      if (call.ended) return;
      if (loaded !== 'ok:') return void this.finish(call, this.outcomeOf(call, loaded));

      const meta = JSON.stringify({ pluginId: this.init.pluginId, instanceId: msg.instanceId, deadline: msg.deadline });
      const result = await call.control.apply(undefined, ['run', msg.method, msg.requestJson, msg.configJson, meta], {
        timeout: this.entryTimeout(call),
        result: { promise: true },
      });
      this.finish(call, this.outcomeOf(call, result));
    } catch (err) {
      this.entryFailed(call, err);
    }
  }

  /** Turns the bridge's `ok:<json>` / `err:<json>` string into an outcome, trusting nothing in it. */
  private outcomeOf(call: ActiveCall, value: unknown): CallOutcome {
    if (typeof value !== 'string') return fail('plugin_error', `${call.method} ended without an outcome from the sandbox bridge`);
    if (value.startsWith('ok:')) {
      const json = value.slice(3);
      const bytes = Buffer.byteLength(json, 'utf8');
      if (bytes > this.init.limits.maxResultBytes) return fail('bad_result', `result is ${bytes} bytes, over the ${this.init.limits.maxResultBytes}-byte limit`);
      return { ok: true, json };
    }
    if (value.startsWith('err:')) {
      try {
        const parsed = JSON.parse(value.slice(4)) as { code?: unknown; message?: unknown };
        const code = typeof parsed.code === 'string' ? parsed.code : '';
        const message = typeof parsed.message === 'string' ? clip(parsed.message, 2000) : `${call.method} failed`;
        if (BRIDGE_CODES.has(code) || call.refusalCodes.has(code)) return fail(code, message);
        return fail('plugin_error', message);
      } catch {
        // fall through
      }
    }
    return fail('plugin_error', `${call.method} ended with an unreadable outcome`);
  }

  /** An entry into the isolate threw: the memory limit, the CPU timeout, or something isolated-vm refused. */
  private entryFailed(call: ActiveCall, err: unknown): void {
    const slot = call.slot;
    if (slot && slot.isolate.isDisposed) return this.memoryExceeded(slot);
    if (call.ended) return;
    const message = messageOf(err);
    if (/timed out/i.test(message)) {
      if (Date.now() >= call.deadline) this.finish(call, fail('timeout', `${call.method} did not finish by its deadline`));
      else this.finish(call, fail('cpu_limit', `${call.method} ran for more than ${this.init.limits.cpuTimeoutMs} ms without yielding`));
      return;
    }
    this.finish(call, fail('plugin_error', `${call.method} failed in the sandbox: ${clip(message, 500)}`));
  }

  private memoryExceeded(slot: Slot): void {
    if (this.slot === slot) this.slot = null;
    for (const call of [...slot.calls]) {
      this.finish(call, fail('memory_limit', `the plugin exceeded its ${this.init.limits.memoryLimitMb} MB memory limit; its isolate was discarded`));
    }
  }

  /** Runs one more piece of the call's code (an op answer, a timer) under the CPU timeout. */
  private enter(call: ActiveCall, args: Array<string | number | boolean | null>): void {
    if (call.ended || !call.control) return;
    call.control.apply(undefined, args, { timeout: this.entryTimeout(call) }).catch((err: unknown) => this.entryFailed(call, err));
  }

  /** The only way out of the isolate. Anything arriving for a call that has ended reaches nothing. */
  private fromIsolate(call: ActiveCall, kind: unknown, a: unknown, b: unknown): void {
    if (call.ended) return;
    const limits = this.init.limits;
    if (kind === 'op' && Number.isSafeInteger(a) && (a as number) >= 0 && typeof b === 'string') {
      const opId = a as number;
      const refuse = (message: string) => { if (opId > 0) this.enter(call, ['deliver', opId, false, message, '', false]); };
      if (call.ops >= limits.maxOpsPerCall) return refuse(`more than ${limits.maxOpsPerCall} host operations in one call`);
      if (b.length > limits.maxOpBytes || Buffer.byteLength(b, 'utf8') > limits.maxOpBytes) return refuse(`host operation larger than ${limits.maxOpBytes} bytes`);
      call.ops++;
      if (opId > 0) call.openOps.add(opId);
      this.out({ t: 'op', callId: call.id, opId, opJson: b });
      return;
    }
    if (kind === 'timer' && Number.isSafeInteger(a) && typeof b === 'number') {
      const id = a as number;
      if (call.timers.size >= limits.maxPendingTimers || call.timersTotal >= limits.maxTimersPerCall || call.timers.has(id)) return;
      // A timer due after the deadline could never matter: the call ends first.
      const delay = Math.max(0, Number.isFinite(b) ? b : 0);
      if (Date.now() + delay >= call.deadline) return;
      call.timersTotal++;
      call.timers.set(id, setTimeout(() => {
        call.timers.delete(id);
        this.enter(call, ['timer', id]);
      }, delay));
      return;
    }
    if (kind === 'clearTimer' && Number.isSafeInteger(a)) {
      clearTimeout(call.timers.get(a as number));
      call.timers.delete(a as number);
      return;
    }
    if (kind === 'uncaught' && typeof b === 'string') {
      this.finish(call, fail('plugin_error', clip(b, 2000)));
    }
  }

  /** The kernel's answer to one op. Answers for ended calls or unknown ops are dropped. */
  deliverOp(msg: OpResultMessage): void {
    const call = this.calls.get(msg.callId);
    if (!call || call.ended || !call.openOps.delete(msg.opId)) return;
    if (msg.ok) {
      this.enter(call, ['deliver', msg.opId, true, msg.valueJson, '', false]);
      return;
    }
    if (msg.hostRefusal && msg.code) call.refusalCodes.add(msg.code);
    this.enter(call, ['deliver', msg.opId, false, clip(msg.message, 2000), msg.code ?? '', msg.hostRefusal]);
  }

  private finish(call: ActiveCall, outcome: CallOutcome): void {
    if (call.ended) return;
    call.ended = true;
    clearTimeout(call.deadlineTimer);
    for (const t of call.timers.values()) clearTimeout(t);
    call.timers.clear();
    call.openOps.clear();
    this.calls.delete(call.id);
    call.slot?.calls.delete(call);
    this.release(call);
    this.out({ t: 'done', id: call.id, ...outcome });
  }

  private release(call: ActiveCall): void {
    try { call.control?.release(); } catch { /* already gone with its isolate */ }
    try { call.context?.release(); } catch { /* already gone with its isolate */ }
    call.control = null;
    call.context = null;
  }
}
