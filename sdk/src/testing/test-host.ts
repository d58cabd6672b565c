import crypto from 'node:crypto';
import { ISSUANCE_METHODS, caFailureResult, type CaEnsureRequest, type CaInfo, type CaSignRequest, type CaSignResult, type ExecResult, type HttpResponse, type Json, type Plugin, type PluginCapabilities, type PluginContext, type PluginLogger } from '../index.js';
import { deriveKeyInfo } from '../policy/index.js';
import { CapabilityError, PluginCallFailure } from './errors.js';
import { checkEvent, checkExec, checkFetch, checkFsPath, checkKv, checkKvIncrement, checkKvValue, MAX_HTTP_BODY_BYTES } from './grant-checks.js';
import { jsonCopy, jsonProblem } from './json-check.js';
import { methodProblem, resultProblem } from './result-shapes.js';

/** A request as the fake network sees it, after the host's checks. */
export interface FakeHttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  /** The body as UTF-8 text (decoded from base64 when the plugin sent base64); undefined without a body. */
  body: string | undefined;
  /** The body's bytes. */
  rawBody: Buffer | undefined;
}

/** What a fake handler answers. An object or array `body` is sent as JSON. */
export interface FakeHttpResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer | Json;
}

export type FakeHttpHandler = (request: FakeHttpRequest) => FakeHttpResponse | Promise<FakeHttpResponse>;
export type FakeExecHandler = (command: string, args: string[], options: { timeoutMs?: number; input?: string }) => ExecResult | Promise<ExecResult>;

export interface TestHostOptions<P extends Plugin = Plugin> {
  plugin: P;
  pluginId?: string;
  instanceId?: string | null;
  /** The instance config without secrets (as the host passes it: validated, frozen). */
  config?: Record<string, Json>;
  /** The instance's secret fields by dot path. */
  secrets?: Record<string, string>;
  /** What the operator granted. Nothing by default: every capability is refused. */
  grants?: PluginCapabilities;
  /** The manifest's `features`; when given, feature-gated methods (renew, revoke) need theirs, as in the host. */
  features?: string[];
  /** The network: answers every fetch the grants let through. Without it a granted fetch fails like an unreachable host. */
  http?: FakeHttpHandler;
  /** Names the fake network resolves (`{ 'ca.internal': ['10.0.0.5'] }`); other names count as public addresses. */
  dns?: Record<string, string[]>;
  /** Initial key-value contents. */
  kv?: Map<string, Json> | Record<string, Json>;
  /** Agent side: an in-memory file system for fs.read/fs.write, by absolute path. */
  files?: Record<string, string>;
  /** Capability `ca`: stands in for the kernel's CA keystore (e.g. one backed by openssl). */
  ca?: { ensure(request: CaEnsureRequest): Promise<CaInfo>; sign(request: CaSignRequest): Promise<CaSignResult> };
  /** Agent side: runs granted commands. */
  exec?: FakeExecHandler;
  /** Capability `issuance` (protocol plugins): stands in for the kernel's issuance service. */
  issuance?: Pick<PluginContext['issuance'], 'enroll' | 'caChain'> & Partial<PluginContext['issuance']>;
  /** The host clock (epoch ms). */
  now?: () => number;
  /** Per-call deadline, as the host's default. */
  timeoutMs?: number;
}

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields?: Record<string, Json>;
}

export interface TestHost {
  /** The context the plugin gets: use it directly to test one member. */
  ctx: PluginContext;
  /** Runs one contract method as the host would: JSON in, checked JSON out, failures as PluginCallFailure. */
  call(method: string, request?: Json): Promise<Json>;
  logs: LogRecord[];
  events: { type: string; data: Record<string, Json> }[];
  requests: FakeHttpRequest[];
  kv: Map<string, Json>;
  files: Map<string, string>;
  commands: { command: string; args: string[] }[];
}

const decode = (buf: Buffer): { body: string; bodyEncoding: 'utf8' | 'base64' } => {
  try {
    return { body: new TextDecoder('utf-8', { fatal: true }).decode(buf), bodyEncoding: 'utf8' };
  } catch {
    return { body: buf.toString('base64'), bodyEncoding: 'base64' };
  }
};

function toResponse(r: FakeHttpResponse): HttpResponse {
  if (!r || typeof r.status !== 'number') throw new Error('the fake http handler must answer { status, headers?, body? }');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
  let bytes: Buffer;
  if (r.body === undefined || r.body === null) bytes = Buffer.alloc(0);
  else if (typeof r.body === 'string') bytes = Buffer.from(r.body, 'utf8');
  else if (Buffer.isBuffer(r.body)) bytes = r.body;
  else {
    bytes = Buffer.from(JSON.stringify(r.body), 'utf8');
    headers['content-type'] ??= 'application/json';
  }
  if (bytes.length > MAX_HTTP_BODY_BYTES) throw new CapabilityError(`http.fetch: the response exceeds the ${MAX_HTTP_BODY_BYTES}-byte limit`);
  return { status: r.status, headers, ...decode(bytes) };
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v as object)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * A host for one plugin object, in this process, with fake capabilities behind
 * the kernel's own grant checks: what the grants do not allow throws a
 * CapabilityError inside the plugin, exactly where the real host would refuse.
 * Requests and results cross as JSON copies and results are checked against the
 * contract, so a plugin that passes here does not fail on shape in the kernel.
 */
export function createTestHost<P extends Plugin>(opts: TestHostOptions<P>): TestHost {
  const grants: PluginCapabilities = jsonCopy(opts.grants ?? {});
  const now = opts.now ?? Date.now;
  /** One ctx.issuance operation answered by the fake (granted, present), the request crossing as a JSON copy. */
  const viaFakeIssuance = (op: keyof PluginContext['issuance']) => async (request: unknown): Promise<unknown> => {
    if (grants.issuance !== true) throw new CapabilityError(`issuance.${op} is not granted to this plugin (capability issuance)`);
    const fake = opts.issuance;
    if (!fake) throw new Error(`issuance.${op}: the test host has no fake issuance service (pass \`issuance\`)`);
    const fn = fake[op] as ((request: never) => Promise<unknown>) | undefined;
    if (!fn) throw new Error(`issuance.${op}: the fake issuance service has no ${op}`);
    return fn.call(fake, jsonCopy(request as Json) as never);
  };
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const pluginId = opts.pluginId ?? 'test-plugin';
  const kv = opts.kv instanceof Map ? opts.kv : new Map(Object.entries(opts.kv ?? {}));
  const expiry = new Map<string, number>();
  const files = new Map(Object.entries(opts.files ?? {}));
  const host: Omit<TestHost, 'ctx' | 'call'> = { logs: [], events: [], requests: [], kv, files, commands: [] };
  let deadline: number | null = null;

  const live = (key: string) => {
    const until = expiry.get(key);
    if (until !== undefined && until <= now()) {
      kv.delete(key);
      expiry.delete(key);
    }
    return kv.has(key);
  };

  const logAt = (level: LogRecord['level']) => (message: string, fields?: Record<string, Json>) => {
    const problem = fields === undefined ? null : jsonProblem(fields, 'log fields');
    host.logs.push({ level, message: String(message), ...(fields !== undefined && !problem ? { fields: jsonCopy(fields) } : {}) });
  };
  const log: PluginLogger = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };

  const ctx: PluginContext = deepFreeze({
    pluginId,
    instanceId: opts.instanceId === undefined ? 'test-instance' : opts.instanceId,
    config: deepFreeze(jsonCopy(opts.config ?? {})),
    secrets: {
      async get(path: string) {
        if (typeof path !== 'string' || !path) throw new CapabilityError('secrets.get expects a dot path string');
        return Object.hasOwn(opts.secrets ?? {}, path) ? opts.secrets![path] : undefined;
      },
      async deriveKey(label: string) {
        // Like the kernel: bound to plugin, instance and label (the test host's master key is fixed).
        const bound = deriveKeyInfo(pluginId, opts.instanceId === undefined ? 'test-instance' : opts.instanceId, label);
        if ('problem' in bound) throw new CapabilityError(bound.problem);
        return Buffer.from(crypto.hkdfSync('sha256', 'certctl test host master key', 'certctl-derived-key-v1', bound.info, 32)).toString('base64url');
      },
    },
    log,
    http: {
      async fetch(request) {
        const checked = checkFetch(grants, request, opts.dns);
        const rawBody = checked.body === undefined ? undefined : Buffer.from(checked.body, checked.bodyEncoding ?? 'utf8');
        const seen: FakeHttpRequest = { url: checked.url, method: checked.method, headers: checked.headers, body: rawBody?.toString('utf8'), rawBody };
        host.requests.push(seen);
        if (!opts.http) throw new Error(`http.fetch to ${new URL(checked.url).host} failed: ECONNREFUSED (the test host has no fake http handler)`);
        let answer: FakeHttpResponse;
        try {
          answer = await opts.http(seen);
        } catch (err) {
          throw new Error(`http.fetch to ${new URL(checked.url).host} failed: ${(err as Error)?.message ?? String(err)}`);
        }
        return toResponse(answer);
      },
    },
    kv: {
      async get(key) {
        checkKv(grants, 'kv.get', key);
        return live(key) ? jsonCopy(kv.get(key)!) : undefined;
      },
      async set(key, value, options) {
        checkKv(grants, 'kv.set', key);
        checkKvValue(value, options?.ttlSeconds);
        kv.set(key, jsonCopy(value));
        if (options?.ttlSeconds !== undefined) expiry.set(key, now() + options.ttlSeconds * 1000);
        else expiry.delete(key);
      },
      async delete(key) {
        checkKv(grants, 'kv.delete', key);
        kv.delete(key);
        expiry.delete(key);
      },
      async list(prefix) {
        checkKv(grants, 'kv.list', prefix);
        return [...kv.keys()].filter((k) => live(k) && k.startsWith(prefix ?? '')).sort();
      },
      async take(key) {
        checkKv(grants, 'kv.take', key);
        const value = live(key) ? kv.get(key) : undefined;
        kv.delete(key);
        expiry.delete(key);
        return value;
      },
      async increment(key, options) {
        checkKv(grants, 'kv.increment', key);
        checkKvIncrement(options?.by, options?.ttlSeconds);
        const by = options?.by ?? 1;
        const current = live(key) ? kv.get(key) : undefined;
        if (typeof current === 'number') {
          kv.set(key, current + by);
          return current + by;
        }
        kv.set(key, by);
        if (options?.ttlSeconds !== undefined) expiry.set(key, now() + options.ttlSeconds * 1000);
        else expiry.delete(key);
        return by;
      },
    },
    events: {
      async emit(type, data) {
        checkEvent(grants, type, data);
        host.events.push({ type, data: jsonCopy(data) });
      },
    },
    clock: { now: () => now(), deadline: () => deadline ?? now() + timeoutMs },
    ca: {
      async ensure(request) {
        if (grants.ca !== true) throw new CapabilityError('ca.ensure is not granted to this plugin (capability ca)');
        if (!opts.ca) throw new Error('ca.ensure: the test host has no fake CA (pass `ca`)');
        return opts.ca.ensure(jsonCopy(request as unknown as Json) as never);
      },
      async sign(request) {
        if (grants.ca !== true) throw new CapabilityError('ca.sign is not granted to this plugin (capability ca)');
        if (!opts.ca) throw new Error('ca.sign: the test host has no fake CA (pass `ca`)');
        return opts.ca.sign(jsonCopy(request as unknown as Json) as never);
      },
    },
    issuance: Object.fromEntries(ISSUANCE_METHODS.map((m) => [m, viaFakeIssuance(m)])) as unknown as PluginContext['issuance'],
    fs: {
      async remove(path) {
        const abs = checkFsPath(grants, 'fs.remove', path);
        files.delete(abs);
      },
      async read(path) {
        const abs = checkFsPath(grants, 'fs.read', path);
        const content = files.get(abs);
        if (content === undefined) throw new Error(`cannot access ${abs}: ENOENT`);
        return content;
      },
      async write(path, data) {
        const abs = checkFsPath(grants, 'fs.write', path);
        if (typeof data !== 'string') throw new CapabilityError('fs.write data must be a string');
        files.set(abs, data);
      },
    },
    exec: {
      async run(command, args, options) {
        checkExec(grants, command, args);
        host.commands.push({ command, args: [...args] });
        if (!opts.exec) throw new Error(`cannot run ${command}: the test host has no fake exec handler`);
        return opts.exec(command, [...args], { ...options });
      },
    },
  });

  async function call(method: string, request: Json = {}): Promise<Json> {
    const plugin = opts.plugin as unknown as Record<string, unknown> & { kind: Plugin['kind'] };
    const gated = methodProblem(plugin.kind, opts.features ?? null, method);
    if (gated) throw new PluginCallFailure('not_supported', `${pluginId}.${method}: ${gated}`);
    const fn = plugin[method];
    if (method === 'kind' || typeof fn !== 'function') throw new PluginCallFailure('not_supported', `${pluginId}.${method}: the plugin does not implement ${method}`);
    const badRequest = jsonProblem(request, 'request');
    if (badRequest) throw new TypeError(`plugin request must be plain JSON: ${badRequest}`);

    deadline = now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let result: unknown;
    try {
      result = await Promise.race([
        Promise.resolve().then(() => (fn as (r: Json, c: PluginContext) => unknown).call(opts.plugin, jsonCopy(request), ctx)),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new PluginCallFailure('timeout', `${pluginId}.${method} did not finish within ${timeoutMs} ms`)), timeoutMs); }),
      ]);
    } catch (err) {
      if (err instanceof PluginCallFailure) throw err;
      if (err instanceof CapabilityError) throw new PluginCallFailure('capability_denied', err.message);
      const message = err instanceof Error ? err.message : `the plugin threw a non-Error value: ${String(jsonProblem(err) ? typeof err : JSON.stringify(err)).slice(0, 200)}`;
      throw new PluginCallFailure('plugin_error', `${pluginId}.${method}: ${message}`);
    } finally {
      clearTimeout(timer);
      deadline = null;
    }
    const notJson = jsonProblem(result);
    if (notJson) throw new PluginCallFailure('bad_result', `${pluginId}.${method}: ${notJson}`);
    const shape = resultProblem(plugin.kind, method, result);
    if (shape) throw new PluginCallFailure('bad_result', `${pluginId}.${method}: ${shape}`);
    // A sign order is signed by the (fake) CA as ctx.ca.sign would, like the kernel does.
    if (plugin.kind === 'issuer' && (result as { status?: unknown }).status === 'sign') {
      try {
        const signed = await ctx.ca.sign((result as { sign: CaSignRequest }).sign);
        return { status: 'issued', certificatePem: signed.certificatePem, chainPem: [...signed.chainPem] };
      } catch (err) {
        if (err instanceof CapabilityError) throw new PluginCallFailure('capability_denied', err.message);
        return caFailureResult(err) as unknown as Json;
      }
    }
    return jsonCopy(result as Json);
  }

  return { ctx, call, ...host };
}

