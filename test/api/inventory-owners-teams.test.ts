import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

const count = async (t: TestKernel, table: string) => Number(((await t.kernel.db.knex(table).count({ n: '*' }).first()) as { n: number }).n);

/** Lifecycle audit events for one resource type (the audit trail is how we prove writes happened, or did not). */
async function lifecycleEvents(api: ApiClient, resourceType: string, resourceId?: string) {
  await new Promise((r) => setTimeout(r, 10));
  const q = `/api/v1/audit?category=lifecycle&resource_type=${resourceType}${resourceId ? `&resource_id=${resourceId}` : ''}&per_page=500`;
  const res = await api.get(q);
  expect(res.status).toBe(200);
  return res.body.data as { action: string; resource_id: string; actor: string; details: Record<string, unknown> }[];
}

describe.skipIf(POSTGRES_UNAVAILABLE)('teams and owners', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel(); });
  afterAll(async () => { await t?.stop(); });

  it('creates, reads, updates and deletes a team, auditing each change', async () => {
    const created = await t.api.post('/api/v1/teams', { name: 'Platform', description: 'Runs the platform' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'Platform', description: 'Runs the platform' });
    expect(created.body.id).toMatch(/^team-[0-9a-f]{16}$/);
    const id = created.body.id as string;

    expect((await t.api.get(`/api/v1/teams/${id}`)).body).toMatchObject({ id, name: 'Platform' });

    const updated = await t.api.put(`/api/v1/teams/${id}`, { description: 'Platform engineering' });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ id, name: 'Platform', description: 'Platform engineering' });
    expect(new Date(updated.body.updated_at).getTime()).toBeGreaterThanOrEqual(new Date(created.body.updated_at).getTime());

    expect((await t.api.delete(`/api/v1/teams/${id}`)).status).toBe(204);
    const gone = await t.api.get(`/api/v1/teams/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe('not_found');

    const actions = (await lifecycleEvents(t.api, 'team', id)).map((e) => e.action).sort();
    expect(actions).toEqual(['team_created', 'team_deleted', 'team_updated']);
  });

  it('accepts a client-chosen id once', async () => {
    expect((await t.api.post('/api/v1/teams', { id: 'team-sre', name: 'SRE' })).status).toBe(201);
    const again = await t.api.post('/api/v1/teams', { id: 'team-sre', name: 'SRE 2' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('conflict');
    const sameName = await t.api.post('/api/v1/teams', { name: 'SRE' });
    expect(sameName.status).toBe(409);
  });

  it('refuses bad input and writes nothing', async () => {
    const teamsBefore = await count(t, 'teams');
    const ownersBefore = await count(t, 'owners');
    const auditBefore = (await lifecycleEvents(t.api, 'owner')).length;

    const cases: [string, unknown, number, string][] = [
      ['/api/v1/teams', { name: 'X', colour: 'blue' }, 400, 'validation_failed'],
      ['/api/v1/teams', { name: 42 }, 400, 'validation_failed'],
      ['/api/v1/teams', {}, 400, 'validation_failed'],
      ['/api/v1/teams', { id: 'Bad Id!', name: 'Y' }, 400, 'validation_failed'],
      ['/api/v1/owners', { name: 'Ann', email: 'not-an-email' }, 400, 'validation_failed'],
      ['/api/v1/owners', { name: 'Ann', team_id: 'team-missing' }, 422, 'reference_not_found'],
      ['/api/v1/owners', { name: 'Ann', team_id: 7 }, 400, 'validation_failed'],
    ];
    for (const [path, body, status, code] of cases) {
      const res = await t.api.post(path, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.code).toBe(code);
    }
    const unknown = await t.api.post('/api/v1/teams', { name: 'X', colour: 'blue' });
    expect(unknown.body.error.details).toContainEqual({ path: '/colour', message: 'unknown field' });

    expect(await count(t, 'teams')).toBe(teamsBefore);
    expect(await count(t, 'owners')).toBe(ownersBefore);
    expect((await lifecycleEvents(t.api, 'owner')).length).toBe(auditBefore);
  });

  it('refuses an update that points an owner at a missing team, leaving the owner as it was', async () => {
    const team = (await t.api.post('/api/v1/teams', { name: 'Payments' })).body;
    const owner = await t.api.post('/api/v1/owners', { name: 'Bea', email: 'bea@example.com', team_id: team.id });
    expect(owner.status).toBe(201);
    expect(owner.body).toMatchObject({ name: 'Bea', email: 'bea@example.com', team_id: team.id });

    const bad = await t.api.put(`/api/v1/owners/${owner.body.id}`, { name: 'Beatrice', team_id: 'team-nope' });
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe('reference_not_found');
    expect((await t.api.get(`/api/v1/owners/${owner.body.id}`)).body).toMatchObject({ name: 'Bea', team_id: team.id });

    const emptyUpdate = await t.api.put(`/api/v1/owners/${owner.body.id}`, {});
    expect(emptyUpdate.status).toBe(400);

    const cleared = await t.api.put(`/api/v1/owners/${owner.body.id}`, { team_id: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.team_id).toBeNull();
  });

  it('refuses to delete a team that owners still belong to', async () => {
    const team = (await t.api.post('/api/v1/teams', { name: 'Identity' })).body;
    const owner = (await t.api.post('/api/v1/owners', { name: 'Cai', team_id: team.id })).body;

    const refused = await t.api.delete(`/api/v1/teams/${team.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('in_use');
    expect((await t.api.get(`/api/v1/teams/${team.id}`)).status).toBe(200);

    expect((await t.api.delete(`/api/v1/owners/${owner.id}`)).status).toBe(204);
    expect((await t.api.delete(`/api/v1/teams/${team.id}`)).status).toBe(204);
  });

  it('pages owners by page and by cursor, filters, sorts and trims fields', async () => {
    const team = (await t.api.post('/api/v1/teams', { name: 'Paging' })).body;
    const names = Array.from({ length: 7 }, (_, i) => `pager-${String(i).padStart(2, '0')}`);
    for (const name of names) expect((await t.api.post('/api/v1/owners', { name, email: `${name}@example.com`, team_id: team.id })).status).toBe(201);

    const page1 = await t.api.get(`/api/v1/owners?team_id=${team.id}&per_page=3&page=1`);
    expect(page1.status).toBe(200);
    expect(page1.body).toMatchObject({ total: 7, page: 1, per_page: 3, next_cursor: null });
    expect(page1.body.data.map((o: { name: string }) => o.name)).toEqual(names.slice(0, 3));
    const page3 = await t.api.get(`/api/v1/owners?team_id=${team.id}&per_page=3&page=3`);
    expect(page3.body.data.map((o: { name: string }) => o.name)).toEqual(names.slice(6));

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: { data: { name: string }[]; next_cursor: string | null } } =
        await t.api.get(`/api/v1/owners?team_id=${team.id}&sort=-name&page_size=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.data.map((o) => o.name));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...names].reverse());

    const trimmed = await t.api.get(`/api/v1/owners?team_id=${team.id}&fields=name,email&per_page=1`);
    expect(trimmed.body.data).toEqual([{ id: expect.any(String), name: 'pager-00', email: 'pager-00@example.com' }]);

    expect((await t.api.get('/api/v1/owners?fields=name,secret')).body.error.code).toBe('unknown_field');
    expect((await t.api.get('/api/v1/owners?sort=team_id')).body.error.code).toBe('unsupported_sort');
    expect((await t.api.get('/api/v1/owners?colour=blue')).body.error.code).toBe('bad_query');

    const future = new Date(Date.now() + 3600_000).toISOString();
    expect((await t.api.get(`/api/v1/owners?team_id=${team.id}&created_after=${future}`)).body.total).toBe(0);
    expect((await t.api.get(`/api/v1/owners?team_id=${team.id}&created_before=${future}`)).body.total).toBe(7);
    expect((await t.api.get(`/api/v1/owners?email=pager-03@example.com`)).body.data.map((o: { name: string }) => o.name)).toEqual(['pager-03']);
  });

  it('lets a viewer read but not write', async () => {
    const viewer = t.api.withKey(await t.keyWithRole('viewer'));
    expect((await viewer.get('/api/v1/teams')).status).toBe(200);
    expect((await viewer.get('/api/v1/owners')).status).toBe(200);
    const res = await viewer.post('/api/v1/teams', { name: 'Not allowed' });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
    const auditor = t.api.withKey(await t.keyWithRole('auditor'));
    expect((await auditor.get('/api/v1/owners')).status).toBe(403);
  });
});
