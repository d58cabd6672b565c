/**
 * Why a value is not plain JSON (what crosses between host and plugin), or null.
 * The rule the kernel enforces at every crossing: no undefined, functions, symbols, bigints,
 * NaN or Infinity, class instances (Date, Map, Buffer), or cycles.
 */
export function jsonProblem(value: unknown, what = 'result', maxDepth = 64): string | null {
  const seen = new Set<object>();
  const visit = (v: unknown, at: string, depth: number): string | null => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return null;
    if (typeof v === 'number') return Number.isFinite(v) ? null : `${at} is ${String(v)}, not a JSON number`;
    if (typeof v !== 'object') return `${at} is a ${typeof v}, not JSON`;
    if (depth > maxDepth) return `${at} is nested deeper than ${maxDepth} levels`;
    if (seen.has(v)) return `${at} is a circular reference`;
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const p = visit(v[i], `${at}[${i}]`, depth + 1);
          if (p) return p;
        }
        return null;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) return `${at} is a ${(v as object).constructor?.name ?? 'non-plain'} object, not plain JSON`;
      for (const key of Object.keys(v)) {
        const p = visit((v as Record<string, unknown>)[key], `${at}.${key}`, depth + 1);
        if (p) return p;
      }
      return null;
    } finally {
      seen.delete(v);
    }
  };
  return visit(value, what, 0);
}
