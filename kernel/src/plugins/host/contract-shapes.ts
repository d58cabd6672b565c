import type { ValidateFunction } from 'ajv';
import type { Json, PluginKind } from '@certctl/sdk';
import { ajv, toDetails } from '../../http/validation.js';

/**
 * The plugin contract (sdk/src/contract.ts) as data the host can check: which
 * methods each kind has, which of them an operator-visible feature gates, and the
 * JSON schema of each method's result. A result that does not match is refused
 * (`bad_result`) before any kernel code acts on it.
 */

type Schema = Record<string, unknown>;

/** A result is either one schema, or one schema per value of a discriminating member (`status`, `ok`). */
type ResultShape = { schema: Schema; nullable?: boolean } | { discriminator: string; variants: Record<string, Schema> };

interface MethodShape {
  result: ResultShape;
  /** The method may only be called when the manifest lists this feature. */
  feature?: string;
  required?: boolean;
}

const str = { type: 'string' } as const;
const nonEmpty = { type: 'string', minLength: 1 } as const;
const pemList = { type: 'array', items: nonEmpty, maxItems: 20 } as const;
const obj = (properties: Record<string, unknown>, required: string[]): Schema => ({ type: 'object', additionalProperties: false, properties, required });

const issueResult: ResultShape = {
  discriminator: 'status',
  variants: {
    issued: obj({ status: { const: 'issued' }, certificatePem: nonEmpty, chainPem: pemList }, ['status', 'certificatePem', 'chainPem']),
    pending: obj({ status: { const: 'pending' }, orderId: nonEmpty, retryAfterSeconds: { type: 'number', minimum: 0 } }, ['status', 'orderId', 'retryAfterSeconds']),
    failed: obj({ status: { const: 'failed' }, reason: str, retryable: { type: 'boolean' } }, ['status', 'reason', 'retryable']),
    denied: obj({ status: { const: 'denied' }, reason: str }, ['status', 'reason']),
  },
};

/** issue and renew may also answer with a sign order (SDK SignOrder); its request is checked when the host signs it (ca-requests.ts). */
const issueAnswer: ResultShape = {
  discriminator: 'status',
  variants: { ...issueResult.variants, sign: obj({ status: { const: 'sign' }, sign: { type: 'object' } }, ['status', 'sign']) },
};

const okResult: ResultShape = {
  discriminator: 'ok',
  variants: {
    true: obj({ ok: { const: true } }, ['ok']),
    false: obj({ ok: { const: false }, reason: str }, ['ok', 'reason']),
  },
};

const METHODS: Partial<Record<PluginKind, Record<string, MethodShape>>> = {
  issuer: {
    issue: { required: true, result: issueAnswer },
    checkOrder: { result: issueResult },
    renew: { feature: 'renew', result: issueAnswer },
    revoke: {
      feature: 'revoke',
      result: {
        discriminator: 'status',
        variants: {
          revoked: obj({ status: { const: 'revoked' } }, ['status']),
          failed: obj({ status: { const: 'failed' }, reason: str, retryable: { type: 'boolean' } }, ['status', 'reason', 'retryable']),
        },
      },
    },
    getCaChain: { result: { schema: obj({ chainPem: pemList }, ['chainPem']) } },
    renewalInfo: {
      result: {
        nullable: true,
        schema: obj({
          suggestedWindow: obj({ start: { type: 'string', format: 'date-time' }, end: { type: 'string', format: 'date-time' } }, ['start', 'end']),
          retryAfterSeconds: { type: 'number', minimum: 0 },
          explanationUrl: str,
        }, ['suggestedWindow']),
      },
    },
    validateConfig: { result: okResult },
  },
  target: {
    deploy: {
      required: true,
      result: {
        discriminator: 'status',
        variants: {
          deployed: obj({ status: { const: 'deployed' }, changed: { type: 'boolean' }, snapshotId: str }, ['status', 'changed']),
          failed: obj({ status: { const: 'failed' }, reason: str, rolledBack: { type: 'boolean' } }, ['status', 'reason', 'rolledBack']),
        },
      },
    },
    validate: { result: okResult },
    verify: {
      result: {
        schema: obj({ status: { enum: ['success', 'failed', 'skipped'] }, observedFingerprintSha256: str, reason: str }, ['status']),
      },
    },
    rollback: { result: { schema: obj({ ok: { type: 'boolean' }, reason: str }, ['ok']) } },
    validateConfig: { result: okResult },
  },
  notifier: {
    notify: {
      required: true,
      result: {
        discriminator: 'status',
        variants: {
          sent: obj({ status: { const: 'sent' } }, ['status']),
          failed: obj({ status: { const: 'failed' }, reason: str, retryable: { type: 'boolean' } }, ['status', 'reason', 'retryable']),
        },
      },
    },
    validateConfig: { result: okResult },
  },
  discovery: {
    discover: {
      required: true,
      result: {
        schema: obj({
          certificates: { type: 'array', items: obj({ certificatePem: nonEmpty, source: str }, ['certificatePem', 'source']) },
          nextCursor: str,
        }, ['certificates']),
      },
    },
  },
  protocol: {
    handle: {
      required: true,
      result: {
        schema: obj({
          status: { type: 'integer', minimum: 200, maximum: 599 },
          headers: {
            type: 'object',
            propertyNames: { pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$" },
            additionalProperties: { type: 'string', maxLength: 8192, pattern: '^[^\\r\\n\\u0000]*$' },
          },
          body: str,
          bodyEncoding: { enum: ['utf8', 'base64'] },
        }, ['status']),
      },
    },
  },
};

const METHOD_NAME = /^[a-z][A-Za-z0-9]{0,63}$/;

/** Null when `method` may be called on a plugin of this kind with these features, else why not. */
export function methodProblem(kind: PluginKind, features: readonly string[], method: string): string | null {
  if (!METHOD_NAME.test(method)) return `"${method}" is not a plugin method name`;
  const table = METHODS[kind];
  if (!table) return null;
  const shape = Object.hasOwn(table, method) ? table[method] : undefined;
  if (!shape) return `${kind} plugins have no method "${method}" (they have ${Object.keys(table).join(', ')})`;
  if (shape.feature && !features.includes(shape.feature)) return `the plugin does not declare the "${shape.feature}" feature`;
  return null;
}

/** The methods the contract requires of a kind (the conformance kit calls these). */
export function requiredMethods(kind: PluginKind): string[] {
  return Object.entries(METHODS[kind] ?? {}).filter(([, s]) => s.required).map(([m]) => m);
}

const compiled = new Map<string, ValidateFunction>();
function validator(key: string, schema: Schema): ValidateFunction {
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(key, v);
  }
  return v;
}

const describeErrors = (v: ValidateFunction) => toDetails(v.errors).slice(0, 5).map((d) => `${d.path} ${d.message}`).join('; ');

/** Null when the result matches the contract's shape for the method, else a short reason naming the field. */
export function resultProblem(kind: PluginKind, method: string, result: Json): string | null {
  const shape = METHODS[kind]?.[method]?.result;
  if (!shape) return null;
  const key = `${kind}.${method}`;
  if ('schema' in shape) {
    if (result === null && shape.nullable) return null;
    const v = validator(key, shape.schema);
    return v(result) ? null : `${method} result does not match the contract: ${describeErrors(v)}`;
  }
  if (!result || typeof result !== 'object' || Array.isArray(result)) return `${method} result must be an object`;
  const tag = (result as Record<string, Json>)[shape.discriminator];
  const variant = Object.hasOwn(shape.variants, String(tag)) && (typeof tag === 'string' || typeof tag === 'boolean') ? String(tag) : null;
  if (variant === null) return `${method} result ${shape.discriminator} must be one of ${Object.keys(shape.variants).join(', ')}`;
  const v = validator(`${key}.${variant}`, shape.variants[variant]);
  return v(result) ? null : `${method} result (${shape.discriminator} ${variant}) does not match the contract: ${describeErrors(v)}`;
}
