import { reactive, ref, shallowRef, watch } from 'vue';
import { errorText, request, type ListEnvelope, type Query } from './client';

export interface UseListOptions {
  sort?: string;
  pageSize?: number;
  /** Extra fixed query (e.g. a parent id filter). */
  fixed?: Query;
  /** Keyset paging for big tables; page numbers otherwise. */
  mode?: 'cursor' | 'page';
  immediate?: boolean;
}

/**
 * State for one paged, sorted, filtered list route. Cursor mode keeps the cursors
 * of the pages already seen, so "previous" is exact without offsets.
 */
export function useList<T extends Record<string, unknown> = Record<string, unknown>>(path: string | (() => string), opts: UseListOptions = {}) {
  const rows = shallowRef<T[]>([]);
  const total = ref(0);
  const loading = ref(false);
  const error = ref<string | null>(null);
  const sort = ref(opts.sort ?? '');
  const filters = reactive<Record<string, string>>({});
  const pageSize = ref(opts.pageSize ?? 25);
  const mode = opts.mode ?? 'cursor';
  const page = ref(1);
  // cursors[i] is the cursor that fetched page i+1 (undefined for the first page).
  const cursors = ref<(string | undefined)[]>([undefined]);
  const nextCursor = ref<string | null>(null);
  let generation = 0;

  const resolvePath = () => (typeof path === 'function' ? path() : path);

  function buildQuery(): Query {
    const q: Query = { ...opts.fixed, sort: sort.value || undefined };
    for (const [k, v] of Object.entries(filters)) if (v) q[k] = v;
    if (mode === 'cursor') {
      q.page_size = pageSize.value;
      q.cursor = cursors.value[page.value - 1];
    } else {
      q.page = page.value;
      q.per_page = pageSize.value;
    }
    return q;
  }

  async function load(): Promise<void> {
    const mine = ++generation;
    loading.value = true;
    error.value = null;
    try {
      const res = await request<ListEnvelope<T>>(resolvePath(), { query: buildQuery() });
      if (mine !== generation) return;
      rows.value = res.data;
      total.value = res.total;
      nextCursor.value = res.next_cursor;
    } catch (err) {
      if (mine !== generation) return;
      error.value = errorText(err);
    } finally {
      if (mine === generation) loading.value = false;
    }
  }

  function reset(): Promise<void> {
    page.value = 1;
    cursors.value = [undefined];
    return load();
  }

  const hasNext = () => (mode === 'cursor' ? Boolean(nextCursor.value) : page.value * pageSize.value < total.value);
  const hasPrev = () => page.value > 1;

  function next(): Promise<void> {
    if (!hasNext()) return Promise.resolve();
    if (mode === 'cursor') cursors.value = [...cursors.value.slice(0, page.value), nextCursor.value ?? undefined];
    page.value += 1;
    return load();
  }

  function prev(): Promise<void> {
    if (!hasPrev()) return Promise.resolve();
    page.value -= 1;
    return load();
  }

  /** Cycles a column: ascending, then descending. */
  function toggleSort(key: string): Promise<void> {
    sort.value = sort.value === key ? `-${key}` : key;
    return reset();
  }

  /** What a DataTable shows of this list and the events that drive it: `<DataTable v-bind="list.table()" …>`. */
  const table = () => ({
    rows: rows.value,
    loading: loading.value,
    error: error.value,
    total: total.value,
    sort: sort.value,
    page: page.value,
    hasNext: hasNext(),
    hasPrev: hasPrev(),
    onSort: toggleSort,
    onNext: next,
    onPrev: prev,
    onRetry: load,
  });

  watch(filters, () => void reset());
  if (opts.immediate !== false) void load();

  return { rows, total, loading, error, sort, filters, page, pageSize, load, reload: load, reset, next, prev, hasNext, hasPrev, toggleSort, table };
}

export type ListState = ReturnType<typeof useList>;
