import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { seedReferences } from '../lifecycle/cert-fixtures.js';

const base = '/api/v1/certificates';
const N = 300;
const STATUSES = ['Active', 'Expiring', 'Expired', 'Pending', 'RenewalInProgress', 'Failed', 'Revoked', 'Archived'];
const OWNERS = ['owner-a', 'owner-b', 'owner-c', null];
const TEAM_OF: Record<string, string | null> = { 'owner-a': 'team-a', 'owner-b': 'team-b', 'owner-c': null };
const pad = (n: number, w = 3) => String(n).padStart(w, '0');
const T0 = Date.parse('2030-01-01T00:00:00.000Z');

interface Fixture {
  id: string; name: string; common_name: string; status: string; environment: string; owner_id: string | null; issuer_id: string;
  profile_id: string | null; agent_id: string | null; expires_at: Date | null; created_at: Date; updated_at: Date;
}

/** 300 certificates with deliberate ties (names, times) and NULL expiries, so ordering and keyset edges are exercised. */
function fixtures(): Fixture[] {
  return Array.from({ length: N }, (_, i) => {
    const created = new Date(T0 + (i % 50) * 60_000 + (i % 3) * 7);
    return {
      id: `mc-l${pad((i * 131) % N)}`, // ids not in insertion order
      name: `grp${pad(i % 40)}`,
      common_name: `host${pad(i)}.example.com`,
      status: STATUSES[i % STATUSES.length],
      environment: ['production', 'staging', 'dev'][i % 3],
      owner_id: OWNERS[i % 4],
      issuer_id: i % 2 ? 'iss-other' : 'iss-local',
      profile_id: [null, 'prof-std', 'prof-web'][i % 3],
      agent_id: i % 5 === 0 ? 'agent-1' : null,
      expires_at: i % 7 === 0 ? null : new Date(T0 + (i % 10 === 1 ? 500 : (i * 7919) % 1000) * 3_600_000 + 123),
      created_at: created,
      updated_at: new Date(created.getTime() + i * 1000 + 456),
    };
  });
}

type Key = keyof Fixture;
/** PostgreSQL order: NULLs last ascending, first descending; id breaks ties in the same direction. */
function expectedOrder(rows: Fixture[], key: Key, desc: boolean): string[] {
  const v = (r: Fixture) => { const x = r[key]; return x instanceof Date ? x.getTime() : x; };
  return [...rows].sort((a, b) => {
    const va = v(a); const vb = v(b);
    let c: number;
    if (va === null && vb === null) c = 0;
    else if (va === null) c = 1;
    else if (vb === null) c = -1;
    else c = va < vb ? -1 : va > vb ? 1 : 0;
    if (c === 0) c = a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    return desc ? -c : c;
  }).map((r) => r.id);
}

describe.skipIf(POSTGRES_UNAVAILABLE)('certificate list: filters, sort, paging', () => {
  let t: TestKernel;
  let rows: Fixture[];
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    await seedReferences(t.kernel.db.knex);
    rows = fixtures();
    await t.kernel.db.knex('managed_certificates').insert(rows);
  });
  afterAll(async () => { await t?.stop(); });

  async function walk(query: string, pageSize: number): Promise<{ ids: string[]; pages: number; totals: Set<number> }> {
    const ids: string[] = [];
    const totals = new Set<number>();
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const res = await t.api.get(`${base}?${query}${query ? '&' : ''}page_size=${pageSize}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.data.length).toBeLessThanOrEqual(pageSize);
      ids.push(...res.body.data.map((c: any) => c.id));
      totals.add(res.body.total);
      cursor = res.body.next_cursor;
      if (++pages > N) throw new Error('cursor paging does not end');
    }
    return { ids, pages, totals };
  }

  const SORTS: [string, Key, boolean][] = [
    ['expires_at', 'expires_at', false], ['-expires_at', 'expires_at', true], ['notAfter', 'expires_at', false], ['-notAfter', 'expires_at', true],
    ['expiresAt', 'expires_at', false], ['not_after', 'expires_at', false], ['createdAt', 'created_at', false], ['-created_at', 'created_at', true],
    ['updatedAt', 'updated_at', false], ['-updated_at', 'updated_at', true], ['commonName', 'common_name', false], ['-common_name', 'common_name', true],
    ['name', 'name', false], ['-name', 'name', true], ['status', 'status', false], ['-status', 'status', true],
    ['environment', 'environment', false], ['-environment', 'environment', true],
  ];

  it.each(SORTS)('cursor pages sorted by %s cover every row exactly once, in order', async (sort, key, desc) => {
    const { ids, totals } = await walk(`sort=${sort}`, 37);
    expect(ids).toHaveLength(N);
    expect(new Set(ids).size).toBe(N);
    expect(ids).toEqual(expectedOrder(rows, key, desc));
    expect([...totals]).toEqual([N]);
  });

  it('page mode matches cursor mode and ends with an empty page', async () => {
    const ids: string[] = [];
    for (let page = 1; page <= 7; page++) {
      const res = await t.api.get(`${base}?sort=-notAfter&per_page=50&page=${page}`);
      expect(res.body).toMatchObject({ total: N, page, per_page: 50, next_cursor: null });
      ids.push(...res.body.data.map((c: any) => c.id));
    }
    expect(ids).toEqual(expectedOrder(rows, 'expires_at', true));
    // Default: newest first.
    const first = await t.api.get(`${base}?per_page=5`);
    expect(first.body.data.map((c: any) => c.id)).toEqual(expectedOrder(rows, 'created_at', true).slice(0, 5));
  });

  const at = (ms: number) => new Date(ms).toISOString();
  const FILTERS: [string, (r: Fixture) => boolean][] = [
    ['status=Active', (r) => r.status === 'Active'],
    ['status=Active,Expired,Expiring', (r) => ['Active', 'Expired', 'Expiring'].includes(r.status)],
    ['owner_id=owner-b', (r) => r.owner_id === 'owner-b'],
    ['team_id=team-a', (r) => r.owner_id !== null && TEAM_OF[r.owner_id] === 'team-a'],
    ['team_id=team-a,team-b', (r) => r.owner_id !== null && TEAM_OF[r.owner_id] !== null],
    ['issuer_id=iss-other', (r) => r.issuer_id === 'iss-other'],
    ['profile_id=prof-web', (r) => r.profile_id === 'prof-web'],
    ['agent_id=agent-1', (r) => r.agent_id === 'agent-1'],
    ['environment=staging', (r) => r.environment === 'staging'],
    ['common_name=host042.example.com', (r) => r.common_name === 'host042.example.com'],
    [`expires_before=${at(T0 + 400 * 3_600_000)}`, (r) => r.expires_at !== null && r.expires_at.getTime() < T0 + 400 * 3_600_000],
    [`expires_after=${at(T0 + 500 * 3_600_000)}`, (r) => r.expires_at !== null && r.expires_at.getTime() > T0 + 500 * 3_600_000],
    [`created_after=${at(T0 + 10 * 60_000)}&created_before=${at(T0 + 20 * 60_000)}`, (r) => r.created_at.getTime() > T0 + 10 * 60_000 && r.created_at.getTime() < T0 + 20 * 60_000],
    [`updated_after=${at(T0 + 3_000_000)}`, (r) => r.updated_at.getTime() > T0 + 3_000_000],
    ['team_id=team-b&status=Pending,Failed&environment=production', (r) => r.owner_id === 'owner-b' && ['Pending', 'Failed'].includes(r.status) && r.environment === 'production'],
  ];

  it.each(FILTERS)('filter %s returns exactly the matching rows', async (query, match) => {
    const expected = expectedOrder(rows.filter(match), 'expires_at', true);
    expect(expected.length).toBeGreaterThan(0);
    const { ids, totals } = await walk(`${query}&sort=-expires_at`, 11);
    expect(ids).toEqual(expected);
    expect([...totals]).toEqual([expected.length]);
  });

  it('returns only the requested fields', async () => {
    const res = await t.api.get(`${base}?fields=common_name,status&per_page=3&sort=commonName`);
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(3);
    for (const c of res.body.data) expect(Object.keys(c)).toEqual(['id', 'common_name', 'status']);
    expect(res.body.data[0].common_name).toBe('host000.example.com');
  });

  it.each([
    ['sort=bogus', 'unsupported_sort'],
    ['status=Bogus', 'bad_query'],
    ['fields=id,secret', 'unknown_field'],
    ['expires_before=yesterday', 'bad_query'],
    ['whatever=1', 'bad_query'],
    ['page_size=0', 'bad_query'],
    ['page=2&cursor=abc', 'bad_query'],
    ['cursor=not-a-cursor', 'bad_cursor'],
  ])('refuses %s', async (query, code) => {
    const res = await t.api.get(`${base}?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
  });

  it('refuses a cursor made for another sort', async () => {
    const res = await t.api.get(`${base}?sort=name&page_size=5`);
    const other = await t.api.get(`${base}?sort=status&page_size=5&cursor=${res.body.next_cursor}`);
    expect(other.status).toBe(400);
    expect(other.body.error.code).toBe('bad_cursor');
  });

  it('lists without a query per row', async () => {
    const knex = t.kernel.db.knex;
    // Only this resource's queries: authentication and the API audit flush run on the same knex.
    let queries = 0;
    const count = (q: { sql: string }) => { if (q.sql.includes('managed_certificates')) queries++; };
    knex.on('query', count);
    try {
      const res = await t.api.get(`${base}?per_page=200`);
      expect(res.body.data).toHaveLength(200);
    } finally {
      knex.removeListener('query', count);
    }
    // One count, one page.
    expect(queries).toBe(2);
  });
});
