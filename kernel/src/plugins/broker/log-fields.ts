import type { Json } from '@certctl/sdk';

const SECRET_KEY = /pass(word|phrase)?|secret|token|api[-_]?key|private[-_]?key|authorization|cookie|credential|^key$/i;
const MAX_STRING = 1000;
const MAX_KEYS = 50;
const MAX_DEPTH = 4;

/**
 * Fields a plugin attaches to a log line, made safe to log: secret-looking keys
 * redacted, strings clipped, breadth and depth bounded, control characters
 * dropped from the message. A plugin cannot flood or forge the kernel's log.
 */
export function sanitizeLogFields(fields: unknown, depth = 0): Json {
  if (fields === null || typeof fields === 'boolean') return fields;
  if (typeof fields === 'number') return Number.isFinite(fields) ? fields : String(fields);
  if (typeof fields === 'string') return clip(fields);
  if (typeof fields !== 'object') return `[${typeof fields}]`;
  if (depth >= MAX_DEPTH) return '[nested too deep]';
  if (Array.isArray(fields)) return fields.slice(0, MAX_KEYS).map((v) => sanitizeLogFields(v, depth + 1));
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(fields).slice(0, MAX_KEYS)) {
    out[clip(k, 100)] = SECRET_KEY.test(k) ? '[redacted]' : sanitizeLogFields(v, depth + 1);
  }
  return out;
}

export function sanitizeLogMessage(message: unknown): string {
  // eslint-disable-next-line no-control-regex
  return clip(typeof message === 'string' ? message : String(message), 2000).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
}

const clip = (s: string, max = MAX_STRING) => (s.length > max ? `${s.slice(0, max)}...` : s);
