import { encodeCursor, pickFields, type ListEnvelope, type ListQuery } from '../http/list-query.js';

type Value = string | number | boolean | null;

/**
 * The list conventions (filters, sort, page or cursor, fields, envelope) over an
 * in-memory collection that never changes while the process runs (the plugin
 * catalog). `key` must be unique per item; it is the sort tiebreaker and the
 * cursor position.
 */
export function listInMemory<T, Out>(
  items: readonly T[],
  lq: ListQuery,
  opts: {
    key: (item: T) => string;
    sortValue: (item: T, column: string) => Value;
    filters: Record<string, (item: T, values: string[]) => boolean>;
    serialize: (item: T) => Out;
  },
): ListEnvelope<Partial<Out>> {
  const { column, desc } = lq.sort;
  // Same order as runList: NULLs last ascending, first descending; then the key.
  const cmp = (a: Value, b: Value): number => {
    if (a === b) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    return a < b ? -1 : 1;
  };
  const order = (x: { v: Value; k: string }, y: { v: Value; k: string }) => {
    const c = cmp(x.v, y.v) || (x.k < y.k ? -1 : x.k > y.k ? 1 : 0);
    return desc ? -c : c;
  };
  let rows = items
    .filter((item) => Object.entries(lq.filters).every(([name, values]) => opts.filters[name]?.(item, values) ?? true))
    .map((item) => ({ item, v: opts.sortValue(item, column), k: opts.key(item) }))
    .sort(order);
  const total = rows.length;
  if (lq.cursor) {
    const at = { v: lq.cursor.v as Value, k: lq.cursor.id };
    rows = rows.filter((r) => order(r, at) > 0);
  }
  const start = lq.mode === 'page' ? (lq.page - 1) * lq.perPage : 0;
  const window = rows.slice(start, start + lq.perPage);
  const more = lq.mode === 'cursor' && rows.length > lq.perPage;
  const last = window[window.length - 1];
  return {
    data: window.map((r) => pickFields(opts.serialize(r.item), lq.fields)),
    total,
    page: lq.mode === 'page' ? lq.page : 1,
    per_page: lq.perPage,
    next_cursor: more && last ? encodeCursor(lq.sort.key, last.v, last.k) : null,
  };
}
