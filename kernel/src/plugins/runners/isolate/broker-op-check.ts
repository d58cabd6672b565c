import type { Json } from '@certctl/sdk';
import { isIssuanceOp, type BrokerOp } from '../../host/contracts.js';

/**
 * Reading what the sandbox process sends. The child runs untrusted code, so its
 * messages are data to check, not typed values: JSON text is parsed here (with
 * `__proto__` keys dropped, so no consumer can be tricked by a merge), and a
 * BrokerOp is rebuilt field by field before the broker sees it.
 */

/** JSON.parse without own `__proto__` members anywhere in the value. */
export function parseUntrustedJson(text: string): Json {
  if (!text.includes('"__proto__"')) return JSON.parse(text) as Json;
  return JSON.parse(text, (key, value: unknown) => (key === '__proto__' ? undefined : value)) as Json;
}

const MAX_NAME = 1024;
const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

const isRecord = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isName = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_NAME;
const isOptNumber = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isFinite(v));

/** The op rebuilt from known fields only, or why it is malformed. */
export function checkBrokerOp(value: Json): { ok: true; op: BrokerOp } | { ok: false; reason: string } {
  const bad = (reason: string) => ({ ok: false as const, reason });
  if (!isRecord(value) || typeof value.op !== 'string') return bad('a host operation must be an object with an "op" name');
  const v = value as Record<string, unknown>;
  // ca.* and every issuance.* op (ISSUANCE_METHODS in the SDK) carry one JSON request, checked further by the kernel.
  if (v.op === 'ca.ensure' || v.op === 'ca.sign' || isIssuanceOp(v.op)) {
    return isRecord(v.request) ? { ok: true, op: { op: v.op, request: v.request } } : bad(`${v.op}: the request must be an object`);
  }
  switch (v.op) {
    case 'log':
      if (typeof v.level !== 'string' || !LEVELS.has(v.level)) return bad('log: unknown level');
      if (typeof v.message !== 'string') return bad('log: message must be a string');
      if (v.fields !== undefined && !isRecord(v.fields)) return bad('log: fields must be an object');
      return { ok: true, op: { op: 'log', level: v.level as 'info', message: v.message, ...(v.fields ? { fields: v.fields as Record<string, Json> } : {}) } };
    case 'secrets.get':
      return isName(v.path) ? { ok: true, op: { op: 'secrets.get', path: v.path } } : bad('secrets.get: path must be a string');
    case 'secrets.deriveKey':
      return isName(v.label) ? { ok: true, op: { op: 'secrets.deriveKey', label: v.label } } : bad('secrets.deriveKey: label must be a string');
    case 'http.fetch':
      return isRecord(v.request) ? { ok: true, op: { op: 'http.fetch', request: v.request } } : bad('http.fetch: the request must be an object');
    case 'kv.get':
    case 'kv.delete':
    case 'kv.take':
      return isName(v.key) ? { ok: true, op: { op: v.op, key: v.key } } : bad(`${v.op}: key must be a string`);
    case 'kv.set':
      if (!isName(v.key)) return bad('kv.set: key must be a string');
      if (!isOptNumber(v.ttlSeconds)) return bad('kv.set: ttlSeconds must be a number');
      return { ok: true, op: { op: 'kv.set', key: v.key, value: (v.value ?? null) as Json, ...(v.ttlSeconds !== undefined ? { ttlSeconds: v.ttlSeconds as number } : {}) } };
    case 'kv.increment':
      if (!isName(v.key)) return bad('kv.increment: key must be a string');
      if (!isOptNumber(v.by) || !isOptNumber(v.ttlSeconds)) return bad('kv.increment: by and ttlSeconds must be numbers');
      return { ok: true, op: { op: 'kv.increment', key: v.key, ...(v.by !== undefined ? { by: v.by as number } : {}), ...(v.ttlSeconds !== undefined ? { ttlSeconds: v.ttlSeconds as number } : {}) } };
    case 'kv.list':
      if (v.prefix !== undefined && !isName(v.prefix)) return bad('kv.list: prefix must be a string');
      return { ok: true, op: { op: 'kv.list', ...(v.prefix !== undefined ? { prefix: v.prefix as string } : {}) } };
    case 'events.emit':
      if (!isName(v.type)) return bad('events.emit: type must be a string');
      if (!isRecord(v.data)) return bad('events.emit: data must be an object');
      return { ok: true, op: { op: 'events.emit', type: v.type, data: v.data } };
    case 'fs.remove':
      return isName(v.path) ? { ok: true, op: { op: 'fs.remove', path: v.path } } : bad('fs.remove: path must be a string');
    case 'fs.read':
      return isName(v.path) ? { ok: true, op: { op: 'fs.read', path: v.path } } : bad('fs.read: path must be a string');
    case 'fs.write':
      if (!isName(v.path)) return bad('fs.write: path must be a string');
      if (typeof v.data !== 'string') return bad('fs.write: data must be a string');
      if (v.mode !== undefined && !Number.isInteger(v.mode)) return bad('fs.write: mode must be an integer');
      return { ok: true, op: { op: 'fs.write', path: v.path, data: v.data, ...(v.mode !== undefined ? { mode: v.mode as number } : {}) } };
    case 'exec.run':
      if (!isName(v.command)) return bad('exec.run: command must be a string');
      if (!Array.isArray(v.args) || !v.args.every((a) => typeof a === 'string')) return bad('exec.run: args must be an array of strings');
      if (!isOptNumber(v.timeoutMs)) return bad('exec.run: timeoutMs must be a number');
      if (v.input !== undefined && typeof v.input !== 'string') return bad('exec.run: input must be a string');
      return {
        ok: true,
        op: {
          op: 'exec.run', command: v.command, args: v.args as string[],
          ...(v.timeoutMs !== undefined ? { timeoutMs: v.timeoutMs as number } : {}),
          ...(v.input !== undefined ? { input: v.input as string } : {}),
        },
      };
    default:
      return bad(`unknown host operation ${JSON.stringify(String(v.op).slice(0, 64))}`);
  }
}
