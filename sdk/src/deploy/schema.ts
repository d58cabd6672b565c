import type { Json } from '../contract.js';

/**
 * Config-schema pieces every target shares. A plugin's configSchema lives in
 * its package.json (the host reads it before loading code), so these objects are
 * the reference the package.json copies, and what the plugin checks its config
 * against at run time; the target plugins' tests keep the two equal.
 */

/** JSON-schema pattern of an absolute file path with no ".." segment and no line break. */
export const ABSOLUTE_FILE_PATH_PATTERN = '^/(?!.*(^|/)\\.\\.(/|$))[^\\r\\n]*[^/\\r\\n]$';

/** A config field holding a file the agent writes (grants the agent's fs for that path). */
export function pathFieldSchema(description: string): Record<string, Json> {
  return { type: 'string', minLength: 2, maxLength: 4096, pattern: ABSOLUTE_FILE_PATH_PATTERN, 'x-certctl-path': true, description };
}

/** A config field holding a command argv (grants the agent's exec for its first element); `nullable`: null turns the step off. */
export function commandFieldSchema(description: string, defaultArgv: string[], opts: { nullable?: boolean } = {}): Record<string, Json> {
  return {
    type: opts.nullable ? ['array', 'null'] : 'array', minItems: 1, maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 4096 },
    'x-certctl-command': true, default: defaultArgv, description,
  };
}

/**
 * The optional `verify` block of a target config: after a deploy, the agent opens
 * a TLS connection to host:port (SNI server_name) and compares the SHA-256
 * fingerprint of the served certificate with the one it deployed; on a mismatch it
 * calls the plugin's rollback.
 */
export const verifyEndpointSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['host', 'port'],
  description: 'After deploying, check that this TLS endpoint serves the new certificate (SHA-256 fingerprint); roll back if not',
  properties: {
    host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9._:-]+$', description: 'Host name or IP address to connect to' },
    port: { type: 'integer', minimum: 1, maximum: 65535, description: 'TLS port' },
    server_name: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9._-]+$', description: 'SNI name to send (defaults to host)' },
    timeout_ms: { type: 'integer', minimum: 100, maximum: 60000, default: 5000, description: 'Handshake timeout' },
  },
} as const satisfies Record<string, Json>;

export interface VerifyEndpoint {
  host: string;
  port: number;
  serverName: string;
  timeoutMs: number;
}

const HOST = /^[A-Za-z0-9._:-]{1,253}$/;
const SNI = /^[A-Za-z0-9._-]{1,253}$/;

/** Null when `value` is a valid verify block, else why not. */
export function verifyEndpointProblem(value: unknown): string | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'verify must be an object { host, port, server_name?, timeout_ms? }';
  const v = value as Record<string, unknown>;
  const extra = Object.keys(v).filter((k) => !['host', 'port', 'server_name', 'timeout_ms'].includes(k));
  if (extra.length) return `verify has unknown fields: ${extra.join(', ')}`;
  if (typeof v.host !== 'string' || !HOST.test(v.host)) return 'verify.host must be a host name or IP address';
  if (!Number.isInteger(v.port) || (v.port as number) < 1 || (v.port as number) > 65535) return 'verify.port must be an integer from 1 to 65535';
  if (v.server_name !== undefined && (typeof v.server_name !== 'string' || !SNI.test(v.server_name))) return 'verify.server_name must be a DNS name';
  if (v.timeout_ms !== undefined && (!Number.isInteger(v.timeout_ms) || (v.timeout_ms as number) < 100 || (v.timeout_ms as number) > 60000)) return 'verify.timeout_ms must be an integer from 100 to 60000';
  return null;
}

/** The endpoint a target config asks to verify, or null when it has no verify block. Throws on a malformed block. */
export function readVerifyEndpoint(config: Readonly<Record<string, Json>>): VerifyEndpoint | null {
  const raw = config.verify;
  if (raw === undefined || raw === null) return null;
  const problem = verifyEndpointProblem(raw);
  if (problem) throw new TypeError(problem);
  const v = raw as { host: string; port: number; server_name?: string; timeout_ms?: number };
  return { host: v.host, port: v.port, serverName: v.server_name ?? v.host, timeoutMs: v.timeout_ms ?? 5000 };
}
