import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE, TEST_DB } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

describe.skipIf(POSTGRES_UNAVAILABLE)('kernel basics', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel(); });
  afterAll(async () => { await t?.stop(); });

  it('answers /health without a key', async () => {
    const res = await t.api.get('/health', { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'healthy' });
  });

  it('knows the initial admin', async () => {
    const res = await t.api.get('/api/v1/auth/me');
    expect(res.status).toBe(200);
    expect(res.body.roles.map((r: { role: string }) => r.role)).toEqual(['admin']);
  });
});

describe.skipIf(TEST_DB !== 'pglite')('PGlite maintenance', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel(); });
  afterAll(async () => { await t?.stop(); });

  it('runs VACUUM on a loop, since PGlite has no autovacuum', async () => {
    await t.kernel.scheduler.trigger('database-maintenance');
    const run = await t.kernel.db.knex('scheduler_runs').where({ loop: 'database-maintenance' }).first();
    expect(run).toMatchObject({ outcome: 'ok', error: null });
  });
});
