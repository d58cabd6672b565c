import { mount } from '@vue/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defineComponent, h } from 'vue';
import DataTable from './DataTable.vue';
import { useList } from '../api/use-list';
import { envelope, fakeApi, settle } from '../test-support/fake-api';

const columns = [
  { key: 'name', label: 'Name', sort: 'name' },
  { key: 'status', label: 'Status' },
  { key: 'expires_at', label: 'Expires', sort: 'expires_at' },
];
const rows = [{ id: 'a', name: 'alpha', status: 'Active', expires_at: null }, { id: 'b', name: 'beta', status: 'Expired', expires_at: '2030-01-01' }];

afterEach(() => vi.unstubAllGlobals());

describe('DataTable', () => {
  it('shows loading, error and empty states', async () => {
    const w = mount(DataTable, { props: { testid: 't', columns, rows: [], loading: true } });
    expect(w.find('[data-testid="t-loading"]').exists()).toBe(true);
    await w.setProps({ loading: false, error: 'boom' });
    expect(w.find('[data-testid="t-error"]').text()).toContain('boom');
    await w.find('[data-testid="t-retry"]').trigger('click');
    expect(w.emitted('retry')).toHaveLength(1);
    await w.setProps({ error: null, emptyText: 'Nothing yet' });
    expect(w.find('[data-testid="t-empty"]').text()).toBe('Nothing yet');
  });

  it('renders rows, marks the sorted column and emits the API sort key', async () => {
    const w = mount(DataTable, { props: { testid: 't', columns, rows, sort: '-expires_at' } });
    expect(w.findAll('tbody tr')).toHaveLength(2);
    expect(w.find('[data-testid="t-row-b"]').text()).toContain('Expired');
    expect(w.find('[data-testid="t-row-a"]').text()).toContain('—');
    const headers = w.findAll('th');
    expect(headers[2].attributes('aria-sort')).toBe('descending');
    expect(w.find('[data-testid="t-sort-status"]').exists()).toBe(false);
    await w.find('[data-testid="t-sort-name"]').trigger('click');
    expect(w.emitted('sort')![0]).toEqual(['name']);
  });

  it('selects rows one by one and all at once', async () => {
    const w = mount(DataTable, { props: { testid: 't', columns, rows, selectable: true, selected: [] } });
    await w.find('[data-testid="t-select-b"]').trigger('change');
    expect(w.emitted('update:selected')![0]).toEqual([['b']]);
    await w.setProps({ selected: ['b'] });
    await w.find('[data-testid="t-select-all"]').trigger('change');
    expect(w.emitted('update:selected')![1]).toEqual([['a', 'b']]);
    await w.setProps({ selected: ['a', 'b'] });
    await w.find('[data-testid="t-select-all"]').trigger('change');
    expect(w.emitted('update:selected')![2]).toEqual([[]]);
  });

  it('enables paging buttons from hasNext/hasPrev', async () => {
    const w = mount(DataTable, { props: { testid: 't', columns, rows, hasNext: true, hasPrev: false, page: 1, total: 99 } });
    expect(w.find('[data-testid="t-prev"]').attributes('disabled')).toBeDefined();
    expect(w.find('[data-testid="t-next"]').attributes('disabled')).toBeUndefined();
    expect(w.find('[data-testid="t-total"]').text()).toBe('99 total');
    await w.find('[data-testid="t-next"]').trigger('click');
    expect(w.emitted('next')).toHaveLength(1);
  });
});

describe('useList (cursor paging, sort, filters)', () => {
  function host() {
    let state!: ReturnType<typeof useList>;
    const Comp = defineComponent({ setup() { state = useList('/api/v1/things', { sort: 'name', pageSize: 2 }); return () => h('div'); } });
    mount(Comp);
    return () => state;
  }

  it('walks pages by cursor and comes back exactly', async () => {
    const pages: Record<string, unknown> = {
      '': envelope([{ id: '1' }, { id: '2' }], { total: 5, next_cursor: 'c2' }),
      c2: envelope([{ id: '3' }, { id: '4' }], { total: 5, next_cursor: 'c3' }),
      c3: envelope([{ id: '5' }], { total: 5, next_cursor: null }),
    };
    const { calls } = fakeApi({ 'GET /api/v1/things': (c) => [200, pages[c.url.searchParams.get('cursor') ?? '']] });
    const s = host();
    await settle();
    expect(s().rows.value.map((r) => r.id)).toEqual(['1', '2']);
    expect(calls[0].url.searchParams.get('page_size')).toBe('2');
    expect(calls[0].url.searchParams.get('sort')).toBe('name');
    expect(calls[0].url.searchParams.has('page')).toBe(false);
    await s().next();
    await s().next();
    expect(s().rows.value.map((r) => r.id)).toEqual(['5']);
    expect(s().hasNext()).toBe(false);
    expect(s().page.value).toBe(3);
    await s().prev();
    expect(calls.at(-1)!.url.searchParams.get('cursor')).toBe('c2');
    expect(s().rows.value.map((r) => r.id)).toEqual(['3', '4']);
    await s().prev();
    expect(calls.at(-1)!.url.searchParams.has('cursor')).toBe(false);
    expect(s().hasPrev()).toBe(false);
  });

  it('toggles sort direction and restarts from the first page; filters do the same', async () => {
    const { calls } = fakeApi({ 'GET /api/v1/things': () => [200, envelope([{ id: '1' }], { next_cursor: 'n' })] });
    const s = host();
    await settle();
    await s().next();
    await s().toggleSort('name');
    expect(calls.at(-1)!.url.searchParams.get('sort')).toBe('-name');
    expect(calls.at(-1)!.url.searchParams.has('cursor')).toBe(false);
    expect(s().page.value).toBe(1);
    s().filters.status = 'Active';
    await settle();
    expect(calls.at(-1)!.url.searchParams.get('status')).toBe('Active');
  });

  it('keeps the error message of a failed load', async () => {
    fakeApi({ 'GET /api/v1/things': () => [400, { error: { code: 'bad_query', message: 'Unknown query parameter' } }] });
    const s = host();
    await settle();
    expect(s().error.value).toBe('Unknown query parameter (bad_query)');
    expect(s().loading.value).toBe(false);
  });
});

describe('DataTable row links', () => {
  it('links the first cell only when a row-click listener exists', async () => {
    const plain = mount(DataTable, { props: { testid: 't', columns, rows } });
    expect(plain.find('[data-testid="t-open-a"]').exists()).toBe(false);
    const onRowClick = vi.fn();
    const linked = mount(DataTable, { props: { testid: 't', columns, rows, onRowClick } });
    await linked.find('[data-testid="t-open-a"]').trigger('click');
    expect(onRowClick).toHaveBeenCalledWith(rows[0]);
  });
});
