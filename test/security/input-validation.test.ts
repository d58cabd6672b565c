import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ROLES } from '../../kernel/src/auth/permissions.js';
import type { CompiledRoute } from '../../kernel/src/http/route.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/**
 * The bad-input sweep over every route in the table: malformed JSON, wrong types
 * for each field, unknown fields, oversized bodies, the wrong content type, and
 * bad list parameters. Each must be a 4xx with a catalogued JSON error, never a
 * 500, and must write nothing.
 */
const MAX_BODY = 4096;
const concrete = (path: string) => path.replace(/:([A-Za-z_]+)/g, 'sweep-missing-id');

function wrongValue(schema: Record<string, unknown>): unknown {
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string': return 12345;
    case 'integer':
    case 'number': return 'not-a-number';
    case 'boolean': return 'yes';
    case 'array': return 'not-an-array';
    case 'object': return 'not-an-object';
    default: return { unexpected: ['shape'] };
  }
}

describe.skipIf(POSTGRES_UNAVAILABLE)('bad input never becomes a 500 or a write', () => {
  let t: TestKernel;
  let writeRoutes: CompiledRoute[];
  let listRoutes: CompiledRoute[];
  const keyFor = new Map<string, string>();
  /** The admin key, or for permissions admins do not hold (agent.operate) a key of a role that does. */
  const callerFor = (r: CompiledRoute) => ({ key: keyFor.get(String(r.access)) ?? t.adminKey });

  const snapshot = async () => {
    const tables = ((await t.kernel.db.knex.raw(`select tablename from pg_tables where schemaname = 'public' order by 1`)).rows as { tablename: string }[])
      .map((r) => r.tablename).filter((n) => !['audit_events', 'scheduler_runs', 'schema_migrations', 'schema_migrations_lock'].includes(n));
    const counts: Record<string, number> = {};
    for (const name of tables) counts[name] = Number(((await t.kernel.db.knex(name).count({ n: '*' }))[0] as { n: number }).n);
    return counts;
  };

  const expectCatalogued = (res: { status: number; body: any; text: string }, label: string, status?: number) => {
    expect(res.status, `${label}: ${res.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
    expect(res.status, `${label}: ${res.text.slice(0, 200)}`).toBeLessThan(500);
    if (status) expect(res.status, `${label}: ${res.text.slice(0, 200)}`).toBe(status);
    expect(typeof res.body?.error?.code, label).toBe('string');
    expect(typeof res.body?.error?.message, label).toBe('string');
  };

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_MAX_BODY_SIZE: String(MAX_BODY) } });
    writeRoutes = t.kernel.routes.filter((r) => r.body && ['POST', 'PUT', 'PATCH'].includes(r.method));
    listRoutes = t.kernel.routes.filter((r) => r.list);
    const admin = DEFAULT_ROLES.find((r) => r.name === 'admin')!;
    for (const r of t.kernel.routes) {
      const access = String(r.access);
      if (['public', 'authenticated'].includes(access) || admin.permissions.includes(access as never) || keyFor.has(access)) continue;
      const role = DEFAULT_ROLES.find((x) => x.permissions.includes(access as never))!;
      keyFor.set(access, await t.keyWithRole(role.name));
    }
  });
  afterAll(async () => { await t?.stop(); });

  it('covers the write and list routes of the table', () => {
    expect(writeRoutes.length).toBeGreaterThan(5);
    expect(listRoutes.length).toBeGreaterThan(2);
  });

  it('malformed JSON, non-objects, wrong content type and oversized bodies', async () => {
    const before = await snapshot();
    for (const r of writeRoutes) {
      const path = concrete(r.path);
      const label = `${r.method} ${r.path}`;
      expectCatalogued(await t.api.request(r.method, path, { ...callerFor(r), rawBody: '{"name": "x",' }), `${label} truncated JSON`, 400);
      expectCatalogued(await t.api.request(r.method, path, { ...callerFor(r), rawBody: 'null' }), `${label} null`, 400);
      expectCatalogued(await t.api.request(r.method, path, { ...callerFor(r), rawBody: '[1,2]' }), `${label} array`, 400);
      expectCatalogued(await t.api.request(r.method, path, { ...callerFor(r), rawBody: '"text"' }), `${label} string`, 400);
      expectCatalogued(await t.api.request(r.method, path, { ...callerFor(r), rawBody: '{"a":1}', headers: { 'content-type': 'text/plain' } }), `${label} content-type`, 415);
      const huge = JSON.stringify({ name: 'x'.repeat(MAX_BODY * 2) });
      expectCatalogued(await t.api.request(r.method, path, { ...callerFor(r), rawBody: huge }), `${label} oversized`, 413);
    }
    expect(await snapshot()).toEqual(before);
  });

  it('unknown fields and a wrong type for every declared field', async () => {
    const before = await snapshot();
    for (const r of writeRoutes) {
      const path = concrete(r.path);
      const label = `${r.method} ${r.path}`;
      const schema = r.body as { properties?: Record<string, Record<string, unknown>>; additionalProperties?: unknown };
      expect(schema.additionalProperties, `${label} must refuse unknown fields`).toBe(false);
      expectCatalogued(await t.api.request(r.method, path, { ...callerFor(r), body: { definitely_not_a_field: 1 } }), `${label} unknown field`, 400);
      for (const [field, fieldSchema] of Object.entries(schema.properties ?? {})) {
        const res = await t.api.request(r.method, path, { ...callerFor(r), body: { [field]: wrongValue(fieldSchema) } });
        expectCatalogued(res, `${label} ${field} wrong type`, 400);
      }
    }
    expect(await snapshot()).toEqual(before);
  });

  it('bad list parameters', async () => {
    const bad = ['sort=definitely_not_sortable', 'per_page=0', 'per_page=100000', 'page=-1', 'page=abc', 'cursor=%%%not-a-cursor',
      'cursor=' + Buffer.from('["other",1,"x"]').toString('base64url'), 'fields=no_such_field', 'no_such_param=1', 'page=1&cursor=abc', 'per_page=1&per_page=2'];
    for (const r of listRoutes) {
      for (const q of bad) expectCatalogued(await t.api.get(`${concrete(r.path)}?${q}`, callerFor(r)), `${r.path}?${q}`);
      for (const name of Object.keys(r.list!.timeFilters ?? {})) {
        expectCatalogued(await t.api.get(`${concrete(r.path)}?${name}=yesterday`, callerFor(r)), `${r.path}?${name}=yesterday`, 400);
      }
      for (const [name, f] of Object.entries(r.list!.filters ?? {})) {
        if (f.enum) expectCatalogued(await t.api.get(`${concrete(r.path)}?${name}=NotAValue`, callerFor(r)), `${r.path}?${name}=NotAValue`, 400);
      }
    }
  });
});
