import type { Knex } from 'knex';
import { appError } from '../errors.js';

/**
 * List conventions shared by every collection route: page or cursor pagination,
 * sparse fields, whitelisted sort, time-range and resource filters, and the
 * envelope {"data","total","page","per_page","next_cursor"}.
 */
export interface FilterDef {
  description: string;
  /** Column compared with =; comma-separated values become IN (...). */
  column?: string;
  enum?: readonly string[];
  /** Custom filter (e.g. team_id through owners). */
  apply?: (qb: Knex.QueryBuilder, values: string[]) => void;
}

export interface ListSpec {
  /** API sort names (camelCase and snake_case accepted) -> column. `id` is always the tiebreaker. */
  sortable: Record<string, string>;
  defaultSort: string;
  filters?: Record<string, FilterDef>;
  /** Time-range filters, e.g. expires_before -> expires_at < value. */
  timeFilters?: Record<string, { column: string; op: '<' | '>' | '<=' | '>=' }>;
  /** Fields a client may ask for with ?fields=. */
  fields: readonly string[];
  /** Columns that can be NULL among the sortable ones (cursor logic must know). */
  nullable?: readonly string[];
  /** Other query parameters the route takes (e.g. export format). */
  extra?: Record<string, { description: string; enum?: readonly string[] }>;
}

export interface ListQuery {
  mode: 'page' | 'cursor';
  page: number;
  perPage: number;
  cursor?: { v: unknown; id: string; total?: number };
  sort: { key: string; column: string; desc: boolean };
  fields?: string[];
  filters: Record<string, string[]>;
  times: Record<string, Date>;
  extra: Record<string, string>;
}

const PAGINATION_PARAMS = ['page', 'per_page', 'cursor', 'page_size', 'fields', 'sort'];
export const MAX_PAGE_SIZE = 500;
const DEFAULT_PAGE_SIZE = 50;

function positiveInt(name: string, raw: string, max: number): number {
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1) throw appError('BAD_QUERY', `${name} must be a positive integer`);
  const n = Number(raw);
  if (n > max) throw appError('BAD_QUERY', `${name} must be at most ${max}`);
  return n;
}

const snakeToCamel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

export function sortKeysFor(spec: ListSpec): string[] {
  const keys = new Set<string>();
  for (const k of Object.keys(spec.sortable)) {
    keys.add(k);
    keys.add(snakeToCamel(k));
  }
  return [...keys];
}

function resolveSort(spec: ListSpec, raw: string): ListQuery['sort'] {
  const desc = raw.startsWith('-');
  const key = desc ? raw.slice(1) : raw.replace(/^\+/, '');
  const column = spec.sortable[key] ?? Object.entries(spec.sortable).find(([k]) => snakeToCamel(k) === key)?.[1];
  if (!column) throw appError('UNSUPPORTED_SORT', `Cannot sort by "${key}"; allowed: ${Object.keys(spec.sortable).join(', ')}`);
  return { key, column, desc };
}

/**
 * A cursor is [sort key, last sort value, last id, total]. The total is counted once,
 * on the first page, and carried forward: walking an inventory page by page must not
 * count the whole table on every page. It is a snapshot, as a cursor walk is.
 */
export function encodeCursor(sortKey: string, v: unknown, id: string, total?: number): string {
  const value = v instanceof Date ? { d: v.toISOString() } : v;
  return Buffer.from(JSON.stringify(total === undefined ? [sortKey, value, id] : [sortKey, value, id, total])).toString('base64url');
}

function decodeCursor(raw: string, sortKey: string): { v: unknown; id: string; total?: number } {
  try {
    const parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(parsed) || parsed.length < 3 || parsed.length > 4 || typeof parsed[2] !== 'string') throw new Error('shape');
    const total = parsed[3] as unknown;
    if (total !== undefined && !(Number.isInteger(total) && (total as number) >= 0)) throw new Error('total');
    if (parsed[0] !== sortKey) throw appError('BAD_CURSOR', 'The cursor was made for another sort order');
    let v = parsed[1] as unknown;
    if (v && typeof v === 'object' && 'd' in (v as object)) {
      const d = new Date((v as { d: string }).d);
      if (Number.isNaN(d.getTime())) throw new Error('date');
      v = d;
    } else if (v !== null && !['string', 'number', 'boolean'].includes(typeof v)) throw new Error('value');
    return { v, id: parsed[2], total: total as number | undefined };
  } catch (err) {
    if (err instanceof Error && err.name === 'AppError') throw err;
    throw appError('BAD_CURSOR');
  }
}

/** Parses and validates the query string of a list route. Unknown parameters are refused. */
export function parseListQuery(spec: ListSpec, query: Record<string, string | string[] | undefined>): ListQuery {
  const allowed = new Set([...PAGINATION_PARAMS, ...Object.keys(spec.filters ?? {}), ...Object.keys(spec.timeFilters ?? {}), ...Object.keys(spec.extra ?? {})]);
  const q: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) {
    if (!allowed.has(k)) throw appError('BAD_QUERY', `Unknown query parameter "${k}"`);
    if (Array.isArray(v)) throw appError('BAD_QUERY', `Query parameter "${k}" given more than once`);
    if (v !== undefined) q[k] = v;
  }
  const sort = resolveSort(spec, q.sort ?? spec.defaultSort);
  const mode: ListQuery['mode'] = q.cursor !== undefined || q.page_size !== undefined ? 'cursor' : 'page';
  if (mode === 'cursor' && (q.page !== undefined || q.per_page !== undefined)) {
    throw appError('BAD_QUERY', 'Use either page/per_page or cursor/page_size, not both');
  }
  const perPage = mode === 'cursor'
    ? (q.page_size !== undefined ? positiveInt('page_size', q.page_size, MAX_PAGE_SIZE) : DEFAULT_PAGE_SIZE)
    : (q.per_page !== undefined ? positiveInt('per_page', q.per_page, MAX_PAGE_SIZE) : DEFAULT_PAGE_SIZE);
  const page = mode === 'page' && q.page !== undefined ? positiveInt('page', q.page, 1_000_000) : 1;
  const cursor = mode === 'cursor' && q.cursor ? decodeCursor(q.cursor, sort.key) : undefined;

  let fields: string[] | undefined;
  if (q.fields !== undefined) {
    fields = q.fields.split(',').map((f) => f.trim()).filter(Boolean);
    const unknown = fields.filter((f) => !spec.fields.includes(f));
    if (unknown.length || fields.length === 0) {
      throw appError('UNKNOWN_FIELD', `Unknown field(s): ${unknown.join(', ') || '(none given)'}`);
    }
    if (!fields.includes('id')) fields.unshift('id');
  }

  const filters: Record<string, string[]> = {};
  for (const [name, def] of Object.entries(spec.filters ?? {})) {
    if (q[name] === undefined) continue;
    const values = q[name].split(',').map((s) => s.trim()).filter(Boolean);
    if (values.length === 0 || values.length > 100) throw appError('BAD_QUERY', `Filter "${name}" needs 1 to 100 values`);
    if (def.enum) {
      const bad = values.filter((v) => !def.enum!.includes(v));
      if (bad.length) throw appError('BAD_QUERY', `Filter "${name}" got ${bad.join(', ')}; allowed: ${def.enum.join(', ')}`);
    }
    if (values.some((v) => v.length > 200)) throw appError('BAD_QUERY', `Filter "${name}" value too long`);
    filters[name] = values;
  }
  const times: Record<string, Date> = {};
  for (const name of Object.keys(spec.timeFilters ?? {})) {
    if (q[name] === undefined) continue;
    const d = new Date(q[name]);
    if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(q[name]) || Number.isNaN(d.getTime())) {
      throw appError('BAD_QUERY', `${name} must be an RFC 3339 timestamp`);
    }
    times[name] = d;
  }
  const extra: Record<string, string> = {};
  for (const [name, def] of Object.entries(spec.extra ?? {})) {
    if (q[name] === undefined) continue;
    if (def.enum && !def.enum.includes(q[name])) throw appError('BAD_QUERY', `${name} must be one of ${def.enum.join(', ')}`);
    extra[name] = q[name];
  }
  return { mode, page, perPage, cursor, sort, fields, filters, times, extra };
}

/** Applies the filters (not pagination) of a parsed list query to a builder. */
export function applyFilters(qb: Knex.QueryBuilder, spec: ListSpec, lq: ListQuery): Knex.QueryBuilder {
  for (const [name, values] of Object.entries(lq.filters)) {
    const def = spec.filters![name];
    if (def.apply) def.apply(qb, values);
    else if (values.length === 1) qb.where(def.column!, values[0]);
    else qb.whereIn(def.column!, values);
  }
  for (const [name, at] of Object.entries(lq.times)) {
    const { column, op } = spec.timeFilters![name];
    qb.where(column, op, at);
  }
  return qb;
}

export interface ListEnvelope<T> {
  data: T[];
  total: number;
  page: number;
  per_page: number;
  next_cursor: string | null;
}

/**
 * Runs a list: `base` is a builder with the caller's fixed conditions (scope
 * filters); this adds filters, total, order and the page or keyset window.
 * Sort keeps PostgreSQL's NULL placement (last ascending, first descending).
 */
export async function runList<Row extends { id: string }, Out>(
  base: () => Knex.QueryBuilder,
  spec: ListSpec,
  lq: ListQuery,
  serialize: (row: Row) => Out,
): Promise<ListEnvelope<Partial<Out>>> {
  const filtered = () => applyFilters(base(), spec, lq);
  let total = lq.cursor?.total;
  if (total === undefined) {
    const totalRow = (await filtered().clearSelect().count({ n: '*' }).first()) as { n: number | string } | undefined;
    total = Number(totalRow?.n ?? 0);
  }

  const { column, desc } = lq.sort;
  const nullable = spec.nullable?.includes(column) ?? false;
  const qb = filtered();
  if (lq.cursor) {
    const { v, id } = lq.cursor;
    const cmp = desc ? '<' : '>';
    qb.where((w) => {
      if (v === null) {
        // Inside the NULL block: ascending it is the tail, descending the head.
        w.whereNull(column).andWhere('id', cmp, id);
        if (desc) w.orWhereNotNull(column);
      } else {
        w.whereRaw(`(??, ??) ${cmp} (?, ?)`, [column, 'id', v as Knex.Value, id]);
        if (nullable && !desc) w.orWhereNull(column);
      }
    });
  }
  qb.orderBy([{ column, order: desc ? 'desc' : 'asc' }, { column: 'id', order: desc ? 'desc' : 'asc' }]);
  if (lq.mode === 'page') qb.offset((lq.page - 1) * lq.perPage);
  qb.limit(lq.mode === 'cursor' ? lq.perPage + 1 : lq.perPage);
  const rows = (await qb) as (Row & Record<string, unknown>)[];

  let nextCursor: string | null = null;
  if (lq.mode === 'cursor' && rows.length > lq.perPage) {
    rows.length = lq.perPage;
    const last = rows[rows.length - 1];
    nextCursor = encodeCursor(lq.sort.key, last[column] ?? null, last.id, total);
  }
  const data = rows.map((r) => pickFields(serialize(r), lq.fields));
  return { data, total, page: lq.mode === 'page' ? lq.page : 1, per_page: lq.perPage, next_cursor: nextCursor };
}

export function pickFields<T>(obj: T, fields?: string[]): Partial<T> {
  if (!fields) return obj;
  const out: Record<string, unknown> = {};
  for (const f of fields) out[f] = (obj as Record<string, unknown>)[f];
  return out as Partial<T>;
}
