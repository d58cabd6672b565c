import { appError, type ErrorDetail } from '../../errors.js';

/**
 * Refuses patterns that are not valid regular expressions, at write time, so
 * issuance never meets a broken one. `path` is the JSON pointer of the array.
 */
export function assertValidPatterns(patterns: unknown, path: string): void {
  if (!Array.isArray(patterns)) return;
  const details: ErrorDetail[] = [];
  patterns.forEach((p, i) => {
    try {
      new RegExp(String(p), 'u');
    } catch (err) {
      details.push({ path: `${path}/${i}`, message: `not a valid regular expression: ${(err as Error).message}` });
    }
  });
  if (details.length) throw appError('VALIDATION_FAILED', `Invalid pattern(s) in ${path}: ${details.map((d) => d.path).join(', ')}`, { details });
}
