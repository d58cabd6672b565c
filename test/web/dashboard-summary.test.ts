import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/** GET /api/v1/dashboard/summary: the grouped counts behind the dashboard's cards and timeline. */
describe.skipIf(POSTGRES_UNAVAILABLE)('dashboard summary', () => {
  let t: TestKernel;
  const DAY = 86_400_000;

  beforeAll(async () => {
    // No loops: the status refresher would re-derive the hand-set statuses below.
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    const profile = await t.api.post('/api/v1/profiles', { id: 'prof-web', name: 'web' });
    expect(profile.status, profile.text).toBe(201);
    const now = Date.now();
    const rows = [
      { id: 'mc-s1', status: 'Active', expires_at: new Date(now + 2 * DAY), profile_id: 'prof-web' },
      { id: 'mc-s2', status: 'Active', expires_at: new Date(now + 9 * DAY), profile_id: null },
      { id: 'mc-s3', status: 'Expiring', expires_at: new Date(now + 10 * DAY), profile_id: 'prof-web' },
      { id: 'mc-s4', status: 'Expired', expires_at: new Date(now - 3 * DAY), profile_id: null },
      { id: 'mc-s5', status: 'Pending', expires_at: null, profile_id: null },
      { id: 'mc-s6', status: 'Active', expires_at: new Date(now + 200 * DAY), profile_id: null },
    ];
    await t.kernel.db.knex('managed_certificates').insert(rows.map((r) => ({ ...r, name: r.id, common_name: `${r.id}.example` })));
  });
  afterAll(async () => { await t?.stop(); });

  it('counts certificates by status and buckets expirations per week ahead', async () => {
    const res = await t.api.get('/api/v1/dashboard/summary');
    expect(res.status, res.text).toBe(200);
    expect(res.body.certificates.total).toBe(6);
    expect(res.body.certificates.by_status).toMatchObject({ Active: 3, Expiring: 1, Expired: 1, Pending: 1, Revoked: 0, Archived: 0 });
    expect(res.body.expirations).toHaveLength(12);
    expect(res.body.expirations.map((e: { count: number }) => e.count).slice(0, 3)).toEqual([1, 2, 0]);
    expect(res.body.expirations.reduce((a: number, e: { count: number }) => a + e.count, 0)).toBe(3);
  });

  it('takes a weeks parameter and refuses bad values', async () => {
    expect((await t.api.get('/api/v1/dashboard/summary?weeks=52')).body.expirations).toHaveLength(52);
    expect((await t.api.get('/api/v1/dashboard/summary?weeks=0')).status).toBe(400);
    expect((await t.api.get('/api/v1/dashboard/summary?weeks=abc')).status).toBe(400);
  });

  it('counts only what a profile-scoped reader may see, and needs cert.read', async () => {
    const scoped = await t.keyWithRole('viewer', { scope_type: 'profile', scope_id: 'prof-web' });
    const res = await t.api.get('/api/v1/dashboard/summary', { key: scoped });
    expect(res.status, res.text).toBe(200);
    expect(res.body.certificates.total).toBe(2);
    expect(res.body.certificates.by_status).toMatchObject({ Active: 1, Expiring: 1 });
    expect((await t.api.get('/api/v1/dashboard/summary', { key: null })).status).toBe(401);
  });
});
