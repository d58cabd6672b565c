import { parseArgs } from 'node:util';

/**
 * Numeric command-line options: `spec` maps each --name to its default and bounds (a whole
 * number >= 1 unless `min` or `whole: false` say otherwise). Returns the numbers by name.
 * @param {string[]} args
 * @param {Record<string, { default: number, min?: number, whole?: boolean }>} spec
 */
export function numericOptions(args, spec) {
  const { values } = parseArgs({ args, options: Object.fromEntries(Object.entries(spec).map(([k, s]) => [k, { type: 'string', default: String(s.default) }])) });
  return Object.fromEntries(Object.entries(spec).map(([k, { min = 1, whole = true }]) => {
    const n = Number(values[k]);
    if (!Number.isFinite(n) || n < min || (whole && !Number.isInteger(n))) throw new Error(`--${k} must be a ${whole ? 'whole number' : 'number'} >= ${min}`);
    return [k, n];
  }));
}
