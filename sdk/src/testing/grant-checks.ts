import net from 'node:net';
import path from 'node:path';
import type { HttpRequest, PluginCapabilities } from '../index.js';
import { CapabilityError } from './errors.js';
import { jsonProblem } from './json-check.js';
import { addressAllowed, classifyAddress, FetchPolicyRefusal, matchHostRule, normalizeAddress, parseFetchRequest, parseHostRule, urlHost, type FetchRequestParts, type HostRule } from '../policy/index.js';

/**
 * The host's capability rules, for the test host. Request parsing, host matching
 * and address classes come from ../policy, which the kernel's broker uses too; the
 * kv, event, fs and exec checks follow the broker (kernel/src/plugins/broker), and
 * a parity test in this folder runs both on the same cases. One difference is
 * inherent: the test host resolves no DNS, so a host name reaches the address given
 * in the `dns` option, or counts as a public address.
 */

// ---- http ---------------------------------------------------------------

export const MAX_HTTP_BODY_BYTES = 5 * 1024 * 1024;

/** The request as the host would send it, after every check; throws CapabilityError when refused. */
export function checkFetch(grants: PluginCapabilities, raw: unknown, dns: Record<string, string[]> = {}): Required<Pick<HttpRequest, 'url' | 'method' | 'headers'>> & { body?: string; bodyEncoding?: 'utf8' | 'base64' } {
  const hosts = grants.http?.hosts ?? [];
  if (!hosts.length) throw new CapabilityError('http.fetch is not granted to this plugin (capability http)');
  let parts: FetchRequestParts;
  try {
    parts = parseFetchRequest(raw, MAX_HTTP_BODY_BYTES);
  } catch (err) {
    if (err instanceof FetchPolicyRefusal) throw new CapabilityError(err.message);
    throw err;
  }
  const { url, method, headers } = parts;
  const rules = hosts.map(parseHostRule).filter((x): x is HostRule => x !== null);
  const match = matchHostRule(rules, url);
  if ('reason' in match) throw new CapabilityError(`http.fetch refused: ${match.reason}`);
  const host = urlHost(url);
  const addresses = net.isIP(host) ? [host] : (dns[host] ?? (host === 'localhost' ? ['127.0.0.1'] : []));
  const refused = addresses.map(normalizeAddress).filter((a) => !addressAllowed(classifyAddress(a), a, match.rule));
  if (addresses.length && refused.length === addresses.length) {
    throw new CapabilityError(`${host} resolves to ${refused.map((a) => `${a} (${classifyAddress(a)})`).join(', ')}, which plugins may not reach unless the operator grants it`);
  }
  const body = (raw as HttpRequest).body;
  return { url: (raw as HttpRequest).url, method, headers, ...(parts.body ? { body: body as string, bodyEncoding: parts.bodyEncoding } : {}) };
}

// ---- kv, events ---------------------------------------------------------

export const KV_LIMITS = { maxValueBytes: 64 * 1024, maxKeysPerPlugin: 10_000, maxKeyLength: 256, maxTtlSeconds: 10 * 365 * 24 * 3600 };

export function checkKv(grants: PluginCapabilities, op: string, key?: unknown): void {
  if (grants.kv !== true) throw new CapabilityError(`${op} is not granted to this plugin (capability kv)`);
  if (op === 'kv.list') {
    if (key !== undefined && (typeof key !== 'string' || key.length > KV_LIMITS.maxKeyLength)) throw new CapabilityError('kv list prefix must be a string');
    return;
  }
  if (typeof key !== 'string' || key.length === 0 || key.length > KV_LIMITS.maxKeyLength) throw new CapabilityError(`kv key must be a string of 1 to ${KV_LIMITS.maxKeyLength} characters`);
  if (key.includes('\0')) throw new CapabilityError('kv key must not contain NUL');
}

export function checkKvValue(value: unknown, ttlSeconds: unknown): void {
  const problem = jsonProblem(value, 'kv value');
  if (value === undefined || problem) throw new CapabilityError(problem ?? 'kv value must be JSON');
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > KV_LIMITS.maxValueBytes) throw new CapabilityError(`kv value is ${bytes} bytes, over the ${KV_LIMITS.maxValueBytes}-byte limit`);
  if (ttlSeconds !== undefined && !(typeof ttlSeconds === 'number' && Number.isFinite(ttlSeconds) && ttlSeconds > 0 && ttlSeconds <= KV_LIMITS.maxTtlSeconds)) {
    throw new CapabilityError(`kv ttlSeconds must be a number above 0 and at most ${KV_LIMITS.maxTtlSeconds}`);
  }
}

const EVENT_TYPE = /^[a-z0-9][a-z0-9._-]{0,63}$/i;
export const MAX_EVENT_BYTES = 16 * 1024;

export function checkEvent(grants: PluginCapabilities, type: unknown, data: unknown): void {
  if (grants.events !== true) throw new CapabilityError('events.emit is not granted to this plugin (capability events)');
  if (typeof type !== 'string' || !EVENT_TYPE.test(type)) throw new CapabilityError('events.emit type must be 1-64 characters of letters, digits, dot, dash or underscore');
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new CapabilityError('events.emit data must be an object');
  const problem = jsonProblem(data, 'events.emit data');
  if (problem) throw new CapabilityError(problem);
  const bytes = Buffer.byteLength(JSON.stringify(data), 'utf8');
  if (bytes > MAX_EVENT_BYTES) throw new CapabilityError(`events.emit data is ${bytes} bytes, over the ${MAX_EVENT_BYTES}-byte limit`);
}

// ---- agent side: fs, exec ---------------------------------------------

/**
 * A path the `fs` capability allows: absolute, no `..`, at or below a granted
 * path. (The agent also resolves symlinks; the test host's files are in memory,
 * so there are none.)
 */
export function checkFsPath(grants: PluginCapabilities, op: string, requested: unknown): string {
  const roots = (grants.fs?.paths ?? []).filter((p) => typeof p === 'string' && path.isAbsolute(p)).map((p) => path.resolve(p));
  if (!roots.length) throw new CapabilityError(`${op}: the plugin was granted no file paths (capability fs)`);
  if (typeof requested !== 'string' || !requested || requested.length > 4096) throw new CapabilityError('path must be a non-empty string');
  if (requested.includes('\0')) throw new CapabilityError('path must not contain NUL');
  if (!path.isAbsolute(requested)) throw new CapabilityError(`path must be absolute: ${requested}`);
  if (requested.split(/[\\/]+/).includes('..')) throw new CapabilityError(`path must not contain "..": ${requested}`);
  const abs = path.resolve(requested);
  const within = (root: string) => abs === root || abs.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
  if (!roots.some(within)) throw new CapabilityError(`${abs} is outside the granted paths`);
  return abs;
}

export const EXEC_LIMITS = { maxArgs: 256, maxArgLength: 8192 };

/** A command the `exec` capability allows: an absolute path granted exactly, with an array of string arguments. */
export function checkExec(grants: PluginCapabilities, command: unknown, args: unknown): void {
  const declared = grants.exec?.commands ?? [];
  if (!declared.length) throw new CapabilityError('exec.run is not granted to this plugin (capability exec)');
  if (typeof command !== 'string' || !command || command.includes('\0')) throw new CapabilityError('command must be a non-empty string');
  if (!path.isAbsolute(command)) throw new CapabilityError(`command must be an absolute path: ${command}`);
  if (!declared.some((d) => path.isAbsolute(d) && d === command)) throw new CapabilityError(`command ${command} is not among the granted commands`);
  if (!Array.isArray(args)) throw new CapabilityError('args must be an array of strings');
  if (args.length > EXEC_LIMITS.maxArgs) throw new CapabilityError(`at most ${EXEC_LIMITS.maxArgs} arguments`);
  for (const a of args) {
    if (typeof a !== 'string') throw new CapabilityError('args must be an array of strings');
    if (a.includes('\0') || a.length > EXEC_LIMITS.maxArgLength) throw new CapabilityError(`an argument is over ${EXEC_LIMITS.maxArgLength} characters or contains NUL`);
  }
}
