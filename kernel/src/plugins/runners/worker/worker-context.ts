import { ISSUANCE_METHODS, type Json, type PluginContext } from '@certctl/sdk';
import type { BrokerOp } from '../../host/contracts.js';
import { brokerLink } from './broker-link.js';
import { forgetEnsuredAfter, memoisedEnsure } from './ca-ensure-memo.js';
import type { BrokerReplyMessage } from './protocol.js';

/**
 * The PluginContext a first-party plugin gets inside its worker thread. Every
 * capability member turns into a BrokerOp posted to the kernel thread, which
 * checks the grants and answers; nothing here touches the network, disk or
 * database itself. Arguments are JSON round-tripped first, so what the kernel
 * sees is exactly what a sandboxed plugin could have sent.
 */

/** Errors the host raised (refusals and I/O failures), told apart from the plugin's own throws. */
const hostErrors = new WeakMap<object, { code: string | undefined; refusal: boolean }>();

/** When a host refusal escapes the plugin, the call fails with the refusal's code (e.g. capability_denied). */
export function hostRefusalOf(err: unknown): { code: string; message: string } | null {
  if (!err || typeof err !== 'object') return null;
  const info = hostErrors.get(err);
  if (!info?.refusal || !info.code) return null;
  return { code: info.code, message: (err as Error).message };
}

class PluginHostError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.name = code && /^[a-z_]+$/.test(code) ? 'PluginHostError' : 'Error';
  }
}

const asJson = (value: unknown, what: string): Json => {
  if (value === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    throw new TypeError(`${what} must be plain JSON`);
  }
  return text === undefined ? null : (JSON.parse(text) as Json);
};

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export interface WorkerCallContext {
  ctx: PluginContext;
  /** Queues a log line with no reply (used for console output too); see takeLogs. */
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: unknown): void;
  /** Resolves once the kernel has handled every fire-and-forget message posted so far (bounded wait). */
  flush(maxWaitMs?: number): Promise<void>;
  /** The log lines not posted yet, for the call's outcome (they are not posted afterwards). */
  takeLogs(): BrokerOp[];
  /** Rejects ops still waiting and stops listening. */
  dispose(): void;
}

/** Queued log lines are posted after this long, or once this many wait. */
const LOG_DELAY_MS = 100;
const LOG_BATCH = 50;

export function createWorkerContext(opts: { token: string; pluginId: string; instanceId: string | null; config: Record<string, Json>; deadline: number }): WorkerCallContext {
  let nextId = 1;
  let disposed = false;
  let unflushed = 0;
  const pending = new Map<number, { resolve(v: Json): void; reject(e: Error): void }>();
  // Log lines wait here: posted ahead of the next host call (the port keeps order), by a
  // timer in a long call, or else returned with the outcome. A call that logs then
  // returns costs no extra messages.
  let queued: BrokerOp[] = [];
  let logTimer: NodeJS.Timeout | undefined;
  /** Requests with this id or a later one were sent after every posted line: a reply to one confirms the lines were handled. */
  let confirmingId = 0;
  const postQueued = () => {
    clearTimeout(logTimer);
    logTimer = undefined;
    if (!queued.length || disposed) return;
    const lines = queued;
    queued = [];
    for (const op of lines) {
      try {
        port().post({ op });
        unflushed++;
      } catch {
        // A closed port only loses the line.
      }
    }
    confirmingId = nextId;
  };

  const onReply = (msg: BrokerReplyMessage) => {
    const waiter = pending.get(msg.id);
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.id >= confirmingId) unflushed = 0;
    if (msg.ok) waiter.resolve(msg.value);
    else {
      const err = new PluginHostError(msg.message, msg.code);
      if (msg.code) (err as Error & { code?: string }).code = msg.code;
      hostErrors.set(err, { code: msg.code, refusal: msg.hostRefusal });
      waiter.reject(err);
    }
  };
  // Taken with the call's first host call or posted log line: most calls make none.
  let link: ReturnType<typeof brokerLink> | null = null;
  const port = () => (link ??= brokerLink(opts.token, onReply));

  const send = (op: BrokerOp): Promise<Json> => {
    if (disposed) return Promise.reject(new Error('the plugin call has ended; the host no longer answers'));
    postQueued();
    const id = nextId++;
    return new Promise<Json>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      port().post({ id, op });
    });
  };

  const log = (level: 'debug' | 'info' | 'warn' | 'error', message: unknown, fields?: unknown) => {
    if (disposed) return;
    let clean: Record<string, Json> | undefined;
    if (fields !== undefined) {
      try {
        const j = asJson(fields, 'log fields');
        clean = j && typeof j === 'object' && !Array.isArray(j) ? j : { value: j };
      } catch {
        clean = { fields: '[not JSON]' };
      }
    }
    const op: BrokerOp = { op: 'log', level, message: typeof message === 'string' ? message : String(message), ...(clean ? { fields: clean } : {}) };
    queued.push(op);
    // A long call's lines still reach the kernel while it runs; a busy one's in batches.
    if (queued.length >= LOG_BATCH) postQueued();
    else logTimer ??= setTimeout(postQueued, LOG_DELAY_MS);
  };

  const ctx: PluginContext = {
    pluginId: opts.pluginId,
    instanceId: opts.instanceId,
    config: deepFreeze(structuredClone(opts.config)),
    secrets: {
      get: async (path) => {
        const v = await send({ op: 'secrets.get', path: String(path) });
        return typeof v === 'string' ? v : undefined;
      },
      deriveKey: async (label) => (await send({ op: 'secrets.deriveKey', label: String(label) })) as string,
    },
    log: {
      debug: (m, f) => log('debug', m, f),
      info: (m, f) => log('info', m, f),
      warn: (m, f) => log('warn', m, f),
      error: (m, f) => log('error', m, f),
    },
    http: {
      fetch: async (request) => (await send({ op: 'http.fetch', request: asJson(request, 'http.fetch request') })) as never,
    },
    kv: {
      get: async (key) => {
        const v = await send({ op: 'kv.get', key: String(key) });
        // The broker answers { value } so that a stored null and an absent key differ.
        return v && typeof v === 'object' && !Array.isArray(v) && 'value' in v ? v.value : undefined;
      },
      set: async (key, value, options) => {
        const ttl = options?.ttlSeconds;
        await send({ op: 'kv.set', key: String(key), value: asJson(value, 'kv value'), ...(ttl !== undefined ? { ttlSeconds: Number(ttl) } : {}) });
      },
      delete: async (key) => {
        await send({ op: 'kv.delete', key: String(key) });
      },
      list: async (prefix) => (await send({ op: 'kv.list', ...(prefix !== undefined ? { prefix: String(prefix) } : {}) })) as string[],
      take: async (key) => {
        const v = await send({ op: 'kv.take', key: String(key) });
        return v && typeof v === 'object' && !Array.isArray(v) && 'value' in v ? v.value : undefined;
      },
      increment: async (key, options) => {
        const by = options?.by;
        const ttl = options?.ttlSeconds;
        return (await send({ op: 'kv.increment', key: String(key), ...(by !== undefined ? { by: Number(by) } : {}), ...(ttl !== undefined ? { ttlSeconds: Number(ttl) } : {}) })) as number;
      },
    },
    events: {
      emit: async (type, data) => {
        await send({ op: 'events.emit', type: String(type), data: asJson(data, 'event data') as Record<string, Json> });
      },
    },
    clock: { now: () => Date.now(), deadline: () => opts.deadline },
    ca: {
      ensure: async (request) => {
        const json = asJson(request, 'ca.ensure request');
        return (await memoisedEnsure(opts.instanceId, json, () => send({ op: 'ca.ensure', request: json }))) as never;
      },
      sign: async (request) => {
        try {
          return (await send({ op: 'ca.sign', request: asJson(request, 'ca.sign request') })) as never;
        } catch (err) {
          forgetEnsuredAfter(opts.instanceId, err);
          throw err;
        }
      },
    },
    // One shim per method of the SDK's ISSUANCE_METHODS: the request crosses as JSON to op issuance.<method>.
    issuance: Object.fromEntries(ISSUANCE_METHODS.map((m) => [m, async (request: unknown) => send({ op: `issuance.${m}`, request: asJson(request, `issuance.${m} request`) })])) as unknown as PluginContext['issuance'],
    fs: {
      read: async (path) => (await send({ op: 'fs.read', path: String(path) })) as string,
      remove: async (path) => {
        await send({ op: 'fs.remove', path: String(path) });
      },
      write: async (path, data, options) => {
        await send({ op: 'fs.write', path: String(path), data: String(data), ...(options?.mode !== undefined ? { mode: Number(options.mode) } : {}) });
      },
    },
    exec: {
      run: async (command, args, options) => (await send({
        op: 'exec.run',
        command: String(command),
        args: asJson(args, 'exec args') as string[],
        ...(options?.timeoutMs !== undefined ? { timeoutMs: Number(options.timeoutMs) } : {}),
        ...(options?.input !== undefined ? { input: String(options.input) } : {}),
      })) as never,
    },
  };

  return {
    ctx,
    log,
    takeLogs() {
      clearTimeout(logTimer);
      logTimer = undefined;
      const lines = queued;
      queued = [];
      return lines;
    },
    async flush(maxWaitMs = 1000) {
      if (disposed || unflushed === 0) return;
      unflushed = 0;
      const id = nextId++;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          pending.set(id, { resolve: () => resolve(), reject: () => resolve() });
          port().post({ id, flush: true });
        }),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, maxWaitMs); }),
      ]);
      clearTimeout(timer);
      pending.delete(id);
    },
    dispose() {
      disposed = true;
      clearTimeout(logTimer);
      for (const w of pending.values()) w.reject(new Error('the plugin call has ended; the host no longer answers'));
      pending.clear();
      link?.close();
    },
  };
}
