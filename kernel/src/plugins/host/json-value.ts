import type { Json } from '@certctl/sdk';
import { jsonProblem } from '@certctl/sdk/policy';

export { jsonProblem };

/** UTF-8 size, skipping the count when even 3 bytes per UTF-16 unit would fit. */
const utf8Bytes = (text: string, maxBytes: number) => (text.length * 3 <= maxBytes ? text.length : Buffer.byteLength(text, 'utf8'));

export type JsonText = { ok: true; text: string } | { ok: false; reason: string };

/**
 * Serialises a plugin's value for the trip across a thread or process boundary:
 * only plain JSON passes (no Dates, Maps, class instances, undefined, NaN or
 * cycles), and its UTF-8 size must stay within `maxBytes`.
 */
export function toJsonText(value: unknown, maxBytes: number): JsonText {
  let problem: string | null;
  try {
    problem = jsonProblem(value);
  } catch (err) {
    // Getters and proxies run plugin code; whatever they throw makes the value unusable.
    return { ok: false, reason: `result cannot be read: ${describeThrown(err)}` };
  }
  if (problem) return { ok: false, reason: problem };
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    return { ok: false, reason: `result cannot be serialised: ${describeThrown(err)}` };
  }
  const bytes = utf8Bytes(text, maxBytes);
  if (bytes > maxBytes) return { ok: false, reason: `result is ${bytes} bytes, over the ${maxBytes}-byte limit` };
  return { ok: true, text };
}

/** Parses text produced by toJsonText on the other side of a boundary, re-checking its size. */
export function fromJsonText(text: unknown, maxBytes: number): { ok: true; value: Json } | { ok: false; reason: string } {
  if (typeof text !== 'string') return { ok: false, reason: 'result did not arrive as JSON text' };
  if (utf8Bytes(text, maxBytes) > maxBytes) return { ok: false, reason: `result is over the ${maxBytes}-byte limit` };
  try {
    return { ok: true, value: JSON.parse(text) as Json };
  } catch {
    return { ok: false, reason: 'result is not valid JSON' };
  }
}

/**
 * A short, safe description of anything a plugin threw. Never calls plugin
 * code beyond reading `name`/`message` strings, and never throws itself.
 */
export function describeThrown(value: unknown, max = 1000): string {
  try {
    if (value instanceof Error || (value && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string')) {
      const e = value as { name?: unknown; message: string };
      const name = typeof e.name === 'string' && e.name ? e.name : 'Error';
      return clip(`${name}: ${e.message}`, max);
    }
    if (value === null || value === undefined) return `non-Error value thrown: ${String(value)}`;
    if (typeof value === 'string') return clip(`non-Error value thrown: ${value}`, max);
    if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `non-Error value thrown: ${String(value)}`;
    if (typeof value === 'symbol') return 'non-Error value thrown: a symbol';
    if (typeof value === 'function') return 'non-Error value thrown: a function';
    return 'non-Error value thrown: an object';
  } catch {
    return 'non-Error value thrown (unreadable)';
  }
}

const clip = (s: string, max: number) => (s.length > max ? `${s.slice(0, max)}...` : s);
