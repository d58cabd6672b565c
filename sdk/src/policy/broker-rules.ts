import path from 'node:path';
import { KV_MAX_KEYS_CEILING } from '../manifest.js';
import { argsAllowed, type ExecGrant, type PathArgCheck } from './exec-args.js';
import { jsonProblem } from './json-value.js';

/**
 * The kv, events, fs and exec rules of the host's broker as functions that say
 * why a plugin's request is refused (or null). The kernel's broker
 * (kernel/src/plugins/broker) and the SDK's test host both apply them, each
 * throwing its own error type, so a plugin tested with the kit meets the same
 * limits and messages it will meet when installed.
 */

// ---- kv ------------------------------------------------------------------

export interface KvLimits {
  maxValueBytes: number;
  maxKeysPerPlugin: number;
  maxKeyLength: number;
  maxTtlSeconds: number;
}

export const KV_LIMITS: KvLimits = { maxValueBytes: 64 * 1024, maxKeysPerPlugin: 10_000, maxKeyLength: 256, maxTtlSeconds: 10 * 365 * 24 * 3600 };

export { KV_MAX_KEYS_CEILING };

/**
 * The key quota of a kv grant (`true` or `{ maxKeys }`), within the ceiling; 0 when
 * kv is not granted. A plugin that asks for no quota keeps KV_LIMITS.maxKeysPerPlugin;
 * the kernel may lower the ceiling (its broker option), never raise a grant.
 */
export function kvKeyQuota(grant: boolean | { maxKeys: number } | undefined, ceiling = KV_MAX_KEYS_CEILING, base = KV_LIMITS.maxKeysPerPlugin): number {
  if (!grant) return 0;
  const asked = grant === true ? base : Number.isInteger(grant.maxKeys) && grant.maxKeys > 0 ? grant.maxKeys : base;
  return Math.min(asked, ceiling);
}

/** kv.increment's step: a safe integer (negative to count down). */
export function kvIncrementProblem(by: unknown): string | null {
  return by !== undefined && !(typeof by === 'number' && Number.isSafeInteger(by)) ? 'kv increment must be a safe integer' : null;
}

export function kvKeyProblem(key: unknown, maxKeyLength = KV_LIMITS.maxKeyLength): string | null {
  if (typeof key !== 'string' || key.length === 0 || key.length > maxKeyLength) return `kv key must be a string of 1 to ${maxKeyLength} characters`;
  if (key.includes('\0')) return 'kv key must not contain NUL';
  return null;
}

/** kv.list's prefix; absent means every key. */
export function kvPrefixProblem(prefix: unknown, maxKeyLength = KV_LIMITS.maxKeyLength): string | null {
  return prefix !== undefined && (typeof prefix !== 'string' || prefix.length > maxKeyLength) ? 'kv list prefix must be a string' : null;
}

/** A value, as its JSON text (`JSON.stringify(value)`: undefined for no value), and its optional TTL. */
export function kvValueProblem(text: string | undefined, ttlSeconds: unknown, limits: Pick<KvLimits, 'maxValueBytes' | 'maxTtlSeconds'> = KV_LIMITS): string | null {
  if (text === undefined) return 'kv value must be JSON';
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxValueBytes) return `kv value is ${bytes} bytes, over the ${limits.maxValueBytes}-byte limit`;
  if (ttlSeconds !== undefined && !(typeof ttlSeconds === 'number' && Number.isFinite(ttlSeconds) && ttlSeconds > 0 && ttlSeconds <= limits.maxTtlSeconds)) {
    return `kv ttlSeconds must be a number above 0 and at most ${limits.maxTtlSeconds}`;
  }
  return null;
}

// ---- secrets.deriveKey -----------------------------------------------------

/** A label: short printable ASCII (no control characters, so no label can forge the info string below). */
const DERIVE_KEY_LABEL = /^[\x20-\x7e]{1,64}$/;

/**
 * What a secrets.deriveKey key is bound to (its HKDF info): the calling plugin,
 * the call's instance and the label; or a problem when the label is not one.
 */
export function deriveKeyInfo(pluginId: string, instanceId: string | null, label: unknown): { info: string } | { problem: string } {
  if (typeof label !== 'string' || !DERIVE_KEY_LABEL.test(label)) return { problem: 'secrets.deriveKey expects a label of 1-64 printable ASCII characters' };
  return { info: ['certctl plugin key', pluginId, instanceId ?? '', label].join('\0') };
}

// ---- events --------------------------------------------------------------

const EVENT_TYPE = /^[a-z0-9][a-z0-9._-]{0,63}$/i;
export const MAX_EVENT_BYTES = 16 * 1024;

/** Why an event cannot be accepted, or null. */
export function eventProblem(type: unknown, data: unknown): string | null {
  if (typeof type !== 'string' || !EVENT_TYPE.test(type)) return 'events.emit type must be 1-64 characters of letters, digits, dot, dash or underscore';
  if (!data || typeof data !== 'object' || Array.isArray(data)) return 'events.emit data must be an object';
  const problem = jsonProblem(data, 'events.emit data');
  if (problem) return problem;
  const bytes = Buffer.byteLength(JSON.stringify(data), 'utf8');
  if (bytes > MAX_EVENT_BYTES) return `events.emit data is ${bytes} bytes, over the ${MAX_EVENT_BYTES}-byte limit`;
  return null;
}

// ---- agent side: fs, exec --------------------------------------------------

const MAX_PATH = 4096;

/** Whether `p` is `root` or lies below it (both absolute and normalised). */
export const pathWithin = (root: string, p: string): boolean => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/** Why a path a plugin names for fs.* is malformed (before any grant is looked at), or null: absolute, no `..`, no NUL. */
export function fsPathProblem(requested: unknown): string | null {
  if (typeof requested !== 'string' || !requested || requested.length > MAX_PATH) return 'path must be a non-empty string';
  if (requested.includes('\0')) return 'path must not contain NUL';
  if (!path.isAbsolute(requested)) return `path must be absolute: ${requested}`;
  if (requested.split(/[\\/]+/).includes('..')) return `path must not contain "..": ${requested}`;
  return null;
}

/**
 * The `{ "path": ... }` argument check (exec-args.ts) for a call's granted paths: the
 * argument is a well-formed absolute path (fsPathProblem), already normalised, and lies
 * at or below one of `write` (for "write") or of `write` and `read` (for "read"). The
 * agent also checks the real path of each such argument before the command runs.
 */
export function pathArgCheck(granted: { write: readonly string[]; read?: readonly string[] }): PathArgCheck {
  return (arg, access) => {
    if (fsPathProblem(arg) || path.normalize(arg) !== arg) return false;
    const roots = access === 'write' ? granted.write : [...granted.write, ...(granted.read ?? [])];
    return roots.some((r) => pathWithin(path.normalize(r), arg));
  };
}

export const EXEC_ARG_LIMITS = { maxArgs: 256, maxArgLength: 8192 } as const;

/**
 * Why exec.run may not run `command` with `args` under the granted commands, or
 * null. A grant is an exact absolute path (a plain string: any arguments) or an
 * ExecGrant whose argument lists the arguments must match (exec-args.ts; `pathOk`
 * decides `{ "path": ... }` positions, see pathArgCheck).
 */
export function execProblem(command: unknown, args: unknown, declared: readonly (string | ExecGrant)[], pathOk?: PathArgCheck): string | null {
  if (typeof command !== 'string' || !command || command.includes('\0')) return 'command must be a non-empty string';
  if (!path.isAbsolute(command)) return `command must be an absolute path: ${command}`;
  const grants = declared.map((d) => (typeof d === 'string' ? { command: d, args: null } : d))
    .filter((d) => typeof d?.command === 'string' && path.isAbsolute(d.command) && d.command === command);
  if (!grants.length) return `command ${command} is not among the granted commands`;
  if (!Array.isArray(args)) return 'args must be an array of strings';
  if (args.length > EXEC_ARG_LIMITS.maxArgs) return `at most ${EXEC_ARG_LIMITS.maxArgs} arguments`;
  for (const a of args) {
    if (typeof a !== 'string') return 'args must be an array of strings';
    if (a.includes('\0') || a.length > EXEC_ARG_LIMITS.maxArgLength) return `an argument is over ${EXEC_ARG_LIMITS.maxArgLength} characters or contains NUL`;
  }
  if (!grants.some((g) => argsAllowed(g.args, args as string[], pathOk))) return `command ${command} is not granted with these arguments (${JSON.stringify(args).slice(0, 200)})`;
  return null;
}
