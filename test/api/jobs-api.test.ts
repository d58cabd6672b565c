import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions, days, insertIssuedCertificate, seedReferences, writeCounts } from '../lifecycle/cert-fixtures.js';

const base = '/api/v1/jobs';

describe.skipIf(POSTGRES_UNAVAILABLE)('jobs API', () => {
  let t: TestKernel;
  let certStd: string;
  let certWeb: string;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    const knex = t.kernel.db.knex;
    await seedReferences(knex);
    certStd = await insertIssuedCertificate(knex, { profile_id: 'prof-std', issuer_id: 'iss-other' });
    certWeb = await insertIssuedCertificate(knex, { profile_id: 'prof-web', issuer_id: 'iss-other' });
  });
  afterAll(async () => { await t?.stop(); });

  const enqueue = (job: Parameters<TestKernel['kernel']['jobs']['enqueue']>[0]) => t.kernel.jobs.enqueue(job).then((r) => r[0]);
  const setStatus = (id: string, status: string) => t.kernel.db.knex('jobs').where({ id }).update({ status });

  it('cancels Pending, AwaitingCSR and AwaitingApproval jobs, with completed_at and an audit event', async () => {
    const knex = t.kernel.db.knex;
    for (const status of ['Pending', 'AwaitingCSR', 'AwaitingApproval'] as const) {
      const job = await enqueue({ type: 'Deployment', status, certificate_id: certStd, target_id: 'tgt-1', agent_id: 'agent-1' });
      const res = await t.api.post(`${base}/${job.id}/cancel`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: job.id, status: 'Cancelled' });
      expect(res.body.completed_at).not.toBeNull();
      expect(res.body.lease_owner).toBeUndefined();
      expect(await auditActions(knex, job.id)).toEqual(['job_created', 'job_cancelled']);
      const ev = await knex('audit_events').where({ resource_id: job.id, action: 'job_cancelled' }).first();
      expect(ev.details).toMatchObject({ type: 'Deployment', reason: expect.stringContaining('cancelled by') });
      expect(ev.actor).not.toBe('system');
    }
  });

  it('refuses to cancel a job that has started or ended, changing nothing', async () => {
    const knex = t.kernel.db.knex;
    for (const status of ['Running', 'Completed', 'Failed', 'Cancelled']) {
      const job = await enqueue({ type: 'Deployment', certificate_id: certStd });
      await setStatus(job.id, status);
      const before = await writeCounts(knex);
      const res = await t.api.post(`${base}/${job.id}/cancel`);
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('invalid_state');
      expect(res.body.error.message).toContain(status);
      expect((await knex('jobs').where({ id: job.id }).first()).status).toBe(status);
      expect(await writeCounts(knex)).toEqual(before);
    }
    expect((await t.api.post(`${base}/job-nope/cancel`)).status).toBe(404);
  });

  it('puts a certificate back to its expiry status when its renewal is cancelled', async () => {
    const knex = t.kernel.db.knex;
    const soon = await insertIssuedCertificate(knex, { expires_at: days(10) });
    const job = (await t.api.post(`/api/v1/certificates/${soon}/renew`)).body;
    expect(job.status).toBe('Pending');
    expect((await t.api.get(`/api/v1/certificates/${soon}`)).body.status).toBe('RenewalInProgress');
    expect((await t.api.post(`${base}/${job.id}/cancel`)).status).toBe(200);
    expect((await t.api.get(`/api/v1/certificates/${soon}`)).body.status).toBe('Expiring');
    expect(await auditActions(knex, soon)).toEqual(['certificate_renewal_requested', 'certificate_status_changed']);

    const later = await insertIssuedCertificate(knex, { expires_at: days(200), renewal_policy_id: 'rp-manual' });
    const job2 = (await t.api.post(`/api/v1/certificates/${later}/renew`)).body;
    await t.api.post(`${base}/${job2.id}/cancel`);
    expect((await t.api.get(`/api/v1/certificates/${later}`)).body.status).toBe('Active');
  });

  it('gets one job, and 404s an unknown one', async () => {
    const job = await enqueue({ type: 'Validation', certificate_id: certWeb, payload: { note: 'x' } });
    const res = await t.api.get(`${base}/${job.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: job.id, type: 'Validation', status: 'Pending', certificate_id: certWeb, payload: { note: 'x' }, attempts: 0 });
    expect((await t.api.get(`${base}/job-nope`)).status).toBe(404);
  });

  /** 45 jobs of one certificate, created through the queue as real jobs are. */
  async function jobsForPaging() {
    const cert = await insertIssuedCertificate(t.kernel.db.knex);
    const made = [];
    for (let i = 0; i < 45; i++) {
      made.push(await enqueue({ type: (['Issuance', 'Renewal', 'Deployment'] as const)[i % 3], certificate_id: cert, target_id: i % 3 === 2 ? 'tgt-2' : null, agent_id: i % 4 === 0 ? 'agent-2' : null }));
    }
    return { cert, made };
  }

  async function walkAll(cert: string, sort: string): Promise<string[]> {
    const seen: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const res = await t.api.get(`${base}?certificate_id=${cert}&sort=${sort}&page_size=7${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.total).toBe(45);
      seen.push(...res.body.data.map((j: any) => j.id));
      cursor = res.body.next_cursor;
      if (seen.length > 100) break;
    }
    return seen;
  }

  it('filters, sorts and pages jobs', async () => {
    const { cert, made } = await jobsForPaging();
    const ids = new Set(made.map((j) => j.id));
    for (const sort of ['status', '-status', 'type', '-type']) {
      const seen = await walkAll(cert, sort);
      expect({ sort, n: seen.length, unique: new Set(seen).size }).toEqual({ sort, n: 45, unique: 45 });
      expect(seen.every((id) => ids.has(id))).toBe(true);
    }
    const renewals = await t.api.get(`${base}?certificate_id=${cert}&type=Renewal&per_page=100`);
    expect(renewals.body.total).toBe(15);
    expect(renewals.body.data.every((j: any) => j.type === 'Renewal')).toBe(true);
    expect((await t.api.get(`${base}?certificate_id=${cert}&target_id=tgt-2`)).body.total).toBe(15);
    expect((await t.api.get(`${base}?certificate_id=${cert}&agent_id=agent-2`)).body.total).toBe(12);
    await setStatus(made[0].id, 'Failed');
    expect((await t.api.get(`${base}?certificate_id=${cert}&status=Failed,Running`)).body.data.map((j: any) => j.id)).toEqual([made[0].id]);
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await t.api.get(`${base}?certificate_id=${cert}&created_after=${future}`)).body.total).toBe(0);
    expect((await t.api.get(`${base}?certificate_id=${cert}&created_before=${future}`)).body.total).toBe(45);
    expect((await t.api.get(`/api/v1/certificates/${cert}/jobs?type=Deployment`)).body.total).toBe(15);
    expect((await t.api.get(`${base}?status=Nope`)).status).toBe(400);
    expect((await t.api.get(`${base}?sort=attempts`)).status).toBe(400);
  });

  // Database-stamped times (now()) must page exactly once too: migration 002 keeps them at millisecond precision.
  it('pages jobs by their database-stamped times exactly once', async () => {
    const { cert, made } = await jobsForPaging();
    for (const sort of ['created_at', '-created_at', 'updatedAt', '-updated_at', 'scheduled_at', '-scheduledAt']) {
      const seen = await walkAll(cert, sort);
      expect({ sort, n: seen.length, unique: new Set(seen).size }).toEqual({ sort, n: 45, unique: 45 });
      expect(new Set(seen)).toEqual(new Set(made.map((j) => j.id)));
    }
  });

  it('scopes jobs through their certificate', async () => {
    const std = await enqueue({ type: 'Deployment', certificate_id: certStd });
    const web = await enqueue({ type: 'Deployment', certificate_id: certWeb });
    const orphan = await enqueue({ type: 'Validation' });
    const viewer = t.api.withKey(await t.keyWithRole('viewer', { scope_type: 'profile', scope_id: 'prof-std' }));
    const listed = await viewer.get(`${base}?per_page=500`);
    expect(listed.status).toBe(200);
    expect(listed.body.data.length).toBeGreaterThan(0);
    expect(listed.body.data.every((j: any) => j.certificate_id === certStd)).toBe(true);
    expect((await viewer.get(`${base}/${std.id}`)).status).toBe(200);
    expect((await viewer.get(`${base}/${web.id}`)).status).toBe(404);
    expect((await viewer.get(`${base}/${orphan.id}`)).status).toBe(404);
    expect((await viewer.post(`${base}/${std.id}/cancel`)).status).toBe(403);

    const op = t.api.withKey(await t.keyWithRole('operator', { scope_type: 'issuer', scope_id: 'iss-other' }));
    const other = await insertIssuedCertificate(t.kernel.db.knex, { issuer_id: 'iss-local', profile_id: 'prof-std' });
    const outside = await enqueue({ type: 'Deployment', certificate_id: other });
    expect((await op.post(`${base}/${outside.id}/cancel`)).status).toBe(404);
    expect((await op.post(`${base}/${orphan.id}/cancel`)).status).toBe(404);
    expect((await op.post(`${base}/${web.id}/cancel`)).status).toBe(200);
    // The global admin sees everything, jobs without a certificate included.
    expect((await t.api.get(`${base}/${orphan.id}`)).status).toBe(200);
  });
});
