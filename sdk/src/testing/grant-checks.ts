import net from 'node:net';
import path from 'node:path';
import type { HttpRequest, PluginCapabilities } from '../index.js';
import { CapabilityError } from './errors.js';
import { jsonProblem } from './json-check.js';
import {
  addressAllowed, classifyAddress, eventProblem, execProblem, manifestExecGrants, FetchPolicyRefusal, fsPathProblem, kvIncrementProblem, kvKeyProblem, kvPrefixProblem, kvValueProblem, matchHostRule,
  normalizeAddress, parseFetchRequest, parseHostRule, pathArgCheck, pathWithin, urlHost, type FetchRequestParts, type HostRule,
} from '../policy/index.js';

/**
 * The host's capability rules, for the test host. Request parsing, host matching,
 * address classes and the kv, event, fs and exec rules come from ../policy, which
 * the kernel's broker uses too; a parity test in this folder runs the fetch path of
 * both on the same cases. One difference is inherent: the test host resolves no
 * DNS, so a host name reaches the address given in the `dns` option, or counts as
 * a public address.
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

export function checkKv(grants: PluginCapabilities, op: string, key?: unknown): void {
  if (!grants.kv) throw new CapabilityError(`${op} is not granted to this plugin (capability kv)`);
  const problem = op === 'kv.list' ? kvPrefixProblem(key) : kvKeyProblem(key);
  if (problem) throw new CapabilityError(problem);
}

export function checkKvIncrement(by: unknown, ttlSeconds: unknown): void {
  const problem = kvIncrementProblem(by) ?? kvValueProblem('0', ttlSeconds);
  if (problem) throw new CapabilityError(problem);
}

export function checkKvValue(value: unknown, ttlSeconds: unknown): void {
  const problem = jsonProblem(value, 'kv value') ?? kvValueProblem(JSON.stringify(value), ttlSeconds);
  if (problem) throw new CapabilityError(problem);
}

export function checkEvent(grants: PluginCapabilities, type: unknown, data: unknown): void {
  if (grants.events !== true) throw new CapabilityError('events.emit is not granted to this plugin (capability events)');
  const problem = eventProblem(type, data);
  if (problem) throw new CapabilityError(problem);
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
  const problem = fsPathProblem(requested);
  if (problem) throw new CapabilityError(problem);
  const abs = path.resolve(requested as string);
  if (!roots.some((root) => pathWithin(root, abs))) throw new CapabilityError(`${abs} is outside the granted paths`);
  return abs;
}

/** A command the `exec` capability allows: an absolute path granted exactly, with an array of string arguments. */
export function checkExec(grants: PluginCapabilities, command: unknown, args: unknown): void {
  const declared = grants.exec?.commands ?? [];
  if (!declared.length) throw new CapabilityError('exec.run is not granted to this plugin (capability exec)');
  // `{ "path": ... }` arguments: inside the granted fs paths (the test host keeps one list for reading and writing).
  const problem = execProblem(command, args, manifestExecGrants(grants.exec), pathArgCheck({ write: grants.fs?.paths ?? [] }));
  if (problem) throw new CapabilityError(problem);
}
