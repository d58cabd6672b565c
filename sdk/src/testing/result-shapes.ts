import type { PluginKind } from '../index.js';

/**
 * The contract's methods and result shapes as the kernel checks them
 * (kernel/src/plugins/host/contract-shapes.ts): which methods each kind has,
 * which a manifest feature gates, and exactly which members each result may
 * carry. A result the kernel would refuse as `bad_result` is refused here too.
 */

type Check = (v: Record<string, unknown>) => string | null;
type Field = 'string' | 'nonEmpty' | 'boolean' | 'number>=0' | 'pemList' | 'dateTime' | 'anyObject' | { enum: readonly unknown[] } | { object: Shape } | { arrayOf: Shape };
interface Shape { required: Record<string, Field>; optional?: Record<string, Field> }

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$/;

function fieldProblem(f: Field, v: unknown, at: string): string | null {
  if (f === 'string') return typeof v === 'string' ? null : `${at} must be a string`;
  if (f === 'nonEmpty') return typeof v === 'string' && v.length > 0 ? null : `${at} must be a non-empty string`;
  if (f === 'boolean') return typeof v === 'boolean' ? null : `${at} must be a boolean`;
  if (f === 'number>=0') return typeof v === 'number' && v >= 0 ? null : `${at} must be a number >= 0`;
  if (f === 'anyObject') return v && typeof v === 'object' && !Array.isArray(v) ? null : `${at} must be an object`;
  if (f === 'dateTime') return typeof v === 'string' && DATE_TIME.test(v) ? null : `${at} must be an ISO 8601 date-time`;
  if (f === 'pemList') {
    if (!Array.isArray(v) || v.length > 20) return `${at} must be an array of at most 20 PEM strings`;
    return v.every((x) => typeof x === 'string' && x.length > 0) ? null : `${at} must hold non-empty strings`;
  }
  if ('enum' in f) return f.enum.includes(v) ? null : `${at} must be one of ${f.enum.join(', ')}`;
  if ('object' in f) return v && typeof v === 'object' && !Array.isArray(v) ? shapeProblem(f.object, v as Record<string, unknown>, at) : `${at} must be an object`;
  if (!Array.isArray(v)) return `${at} must be an array`;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    const p = x && typeof x === 'object' && !Array.isArray(x) ? shapeProblem(f.arrayOf, x as Record<string, unknown>, `${at}[${i}]`) : `${at}[${i}] must be an object`;
    if (p) return p;
  }
  return null;
}

function shapeProblem(shape: Shape, v: Record<string, unknown>, at: string): string | null {
  for (const [k, f] of Object.entries(shape.required)) {
    if (!Object.hasOwn(v, k)) return `${at}.${k} is required`;
    const p = fieldProblem(f, v[k], `${at}.${k}`);
    if (p) return p;
  }
  for (const k of Object.keys(v)) {
    if (Object.hasOwn(shape.required, k)) continue;
    const f = shape.optional?.[k];
    if (!f) return `${at}.${k} is not a field of this result`;
    const p = fieldProblem(f, v[k], `${at}.${k}`);
    if (p) return p;
  }
  return null;
}

const shape = (required: Record<string, Field>, optional?: Record<string, Field>): Shape => ({ required, optional });
const variants = (tag: string, table: Record<string, Shape>): Check => (v) => {
  const t = v[tag];
  const key = typeof t === 'string' || typeof t === 'boolean' ? String(t) : null;
  if (key === null || !Object.hasOwn(table, key)) return `${tag} must be one of ${Object.keys(table).join(', ')}`;
  return shapeProblem(table[key], v, 'result');
};
const single = (s: Shape): Check => (v) => shapeProblem(s, v, 'result');

const ISSUE_VARIANTS = {
  issued: shape({ status: { enum: ['issued'] }, certificatePem: 'nonEmpty', chainPem: 'pemList' }),
  pending: shape({ status: { enum: ['pending'] }, orderId: 'nonEmpty', retryAfterSeconds: 'number>=0' }),
  failed: shape({ status: { enum: ['failed'] }, reason: 'string', retryable: 'boolean' }),
  denied: shape({ status: { enum: ['denied'] }, reason: 'string' }),
};
const issueResult = variants('status', ISSUE_VARIANTS);
/** issue and renew may also answer with a sign order; its request is checked when the host signs it. */
const issueAnswer = variants('status', { ...ISSUE_VARIANTS, sign: shape({ status: { enum: ['sign'] }, sign: 'anyObject' }) });
const okResult = variants('ok', { true: shape({ ok: { enum: [true] } }), false: shape({ ok: { enum: [false] }, reason: 'string' }) });

interface MethodShape { check: Check; feature?: string; required?: boolean; nullable?: boolean }

export const METHODS: Partial<Record<PluginKind, Record<string, MethodShape>>> = {
  issuer: {
    issue: { required: true, check: issueAnswer },
    checkOrder: { check: issueResult },
    renew: { feature: 'renew', check: issueAnswer },
    revoke: {
      feature: 'revoke',
      check: variants('status', { revoked: shape({ status: { enum: ['revoked'] } }), failed: shape({ status: { enum: ['failed'] }, reason: 'string', retryable: 'boolean' }) }),
    },
    getCaChain: { check: single(shape({ chainPem: 'pemList' })) },
    renewalInfo: {
      nullable: true,
      check: single(shape({ suggestedWindow: { object: shape({ start: 'dateTime', end: 'dateTime' }) } }, { retryAfterSeconds: 'number>=0', explanationUrl: 'string' })),
    },
    validateConfig: { check: okResult },
  },
  target: {
    deploy: {
      required: true,
      check: variants('status', {
        deployed: shape({ status: { enum: ['deployed'] }, changed: 'boolean' }, { snapshotId: 'string' }),
        failed: shape({ status: { enum: ['failed'] }, reason: 'string', rolledBack: 'boolean' }),
      }),
    },
    validate: { check: okResult },
    verify: { check: single(shape({ status: { enum: ['success', 'failed', 'skipped'] } }, { observedFingerprintSha256: 'string', reason: 'string' })) },
    rollback: { check: single(shape({ ok: 'boolean' }, { reason: 'string' })) },
    validateConfig: { check: okResult },
  },
  notifier: {
    notify: { required: true, check: variants('status', { sent: shape({ status: { enum: ['sent'] } }), failed: shape({ status: { enum: ['failed'] }, reason: 'string', retryable: 'boolean' }) }) },
    validateConfig: { check: okResult },
  },
  discovery: {
    discover: { required: true, check: single(shape({ certificates: { arrayOf: shape({ certificatePem: 'nonEmpty', source: 'string' }) } }, { nextCursor: 'string' })) },
  },
  protocol: {
    handle: { required: true, check: (v) => protocolResponseProblem(v) },
  },
};

/** An HTTP answer: a status the kernel can send, string headers, a string body in a known encoding. */
export function protocolResponseProblem(v: Record<string, unknown>): string | null {
  const known = new Set(['status', 'headers', 'body', 'bodyEncoding']);
  const extra = Object.keys(v).find((k) => !known.has(k));
  if (extra) return `result.${extra} is not a member of a protocol response`;
  if (!Number.isInteger(v.status) || (v.status as number) < 200 || (v.status as number) > 599) return 'result.status must be an integer HTTP status from 200 to 599';
  if (v.headers !== undefined) {
    if (!v.headers || typeof v.headers !== 'object' || Array.isArray(v.headers)) return 'result.headers must be an object';
    for (const [k, h] of Object.entries(v.headers)) {
      if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/.test(k)) return `result.headers: "${k.slice(0, 40)}" is not a header name`;
      if (typeof h !== 'string' || /[\r\n\0]/.test(h) || h.length > 8192) return `result.headers.${k} must be a one-line string`;
    }
  }
  if (v.body !== undefined && typeof v.body !== 'string') return 'result.body must be a string';
  if (v.bodyEncoding !== undefined && v.bodyEncoding !== 'utf8' && v.bodyEncoding !== 'base64') return 'result.bodyEncoding must be utf8 or base64';
  return null;
}

const METHOD_NAME = /^[a-z][A-Za-z0-9]{0,63}$/;

/** Null when the host would call `method` on a plugin of this kind (with these manifest features, when known), else why not. */
export function methodProblem(kind: PluginKind, features: readonly string[] | null, method: string): string | null {
  if (!METHOD_NAME.test(method)) return `"${method}" is not a plugin method name`;
  const table = METHODS[kind];
  if (!table) return null;
  const m = Object.hasOwn(table, method) ? table[method] : undefined;
  if (!m) return `${kind} plugins have no method "${method}" (they have ${Object.keys(table).join(', ')})`;
  if (features && m.feature && !features.includes(m.feature)) return `the plugin does not declare the "${m.feature}" feature`;
  return null;
}

/** Null when the result has the contract's shape for the method, else why not. */
export function resultProblem(kind: PluginKind, method: string, result: unknown): string | null {
  const m = METHODS[kind]?.[method];
  if (!m) return null;
  if (result === null && m.nullable) return null;
  if (!result || typeof result !== 'object' || Array.isArray(result)) return `${method} result must be an object`;
  const p = m.check(result as Record<string, unknown>);
  return p ? `${method} result does not match the contract: ${p}` : null;
}
