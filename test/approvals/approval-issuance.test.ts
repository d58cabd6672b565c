import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import { issuanceEnv, issuerCalls, runJob, seedIssuance, versionsOf } from '../lifecycle/issuance-support.js';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/*
 * The approval chain against the real issuance path (server key generation, the
 * fixture CA plugin): a rejected or timed-out request leaves the issuer never asked
 * and no version stored; an approved one is signed and stored, for exactly the names
 * that were approved. The requester and the approver are sibling keys (both minted by
 * the initial admin key): a key minted by the requester could not approve.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('approvals in front of real issuance', () => {
  let t: TestKernel;
  let knex: Knex;
  let requester: ApiClient;
  let second: ApiClient;
  let seq = 0;

  const held = async (body: Record<string, unknown> = {}) => {
    const name = `gated-${++seq}`;
    const res = await requester.post('/api/v1/certificates', { name, common_name: `${name}.example.com`, issuer_id: 'iss-issue', profile_id: 'prof-gated', ...body });
    expect(res.status, res.text).toBe(201);
    const job = (await knex('jobs').where({ certificate_id: res.body.id }).first()) as JobRow;
    expect(job.status).toBe('AwaitingApproval');
    return { id: res.body.id as string, job: job.id };
  };

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv({ CERTCTL_KEYGEN_MODE: 'server' }) });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
    await knex('certificate_profiles').insert({ id: 'prof-gated', name: 'Two-person', requires_approval: true });
    requester = t.api.withKey(await t.keyWithRole('operator'));
    second = t.api.withKey(await t.keyWithRole('operator'));
  });
  afterAll(async () => { await t?.stop(); });

  it('a rejected request: the job is cancelled, the CA is never asked, nothing is stored', async () => {
    const { id, job } = await held();
    expect((await second.post(`/api/v1/jobs/${job}/reject`, { reason: 'no' })).status).toBe(200);
    expect(await runJob(t, job)).toMatchObject({ status: 'Cancelled' });
    expect((await second.post(`/api/v1/jobs/${job}/approve`, {})).status).toBe(409);
    await t.kernel.jobs.drainOnce();
    expect(await versionsOf(knex, id)).toEqual([]);
    expect(await issuerCalls(knex, id)).toEqual([]);
    expect((await t.api.get(`/api/v1/certificates/${id}`)).body).toMatchObject({ status: 'Pending', serial_number: null });
  });

  it('a timed-out request: the same', async () => {
    const { id, job } = await held();
    await knex('jobs').where({ id: job }).update({ approval_expires_at: new Date(Date.now() - 1) });
    await t.kernel.jobs.reap();
    expect((await second.post(`/api/v1/jobs/${job}/approve`, {})).status).toBe(409);
    expect(await runJob(t, job)).toMatchObject({ status: 'Cancelled' });
    expect(await versionsOf(knex, id)).toEqual([]);
    expect(await issuerCalls(knex, id)).toEqual([]);
  });

  it('an approved request by someone else: signed and stored', async () => {
    const { id, job } = await held();
    expect((await requester.post(`/api/v1/jobs/${job}/approve`, {})).status).toBe(403);
    await t.kernel.jobs.drainOnce();
    expect(await versionsOf(knex, id)).toEqual([]);
    const approved = await second.post(`/api/v1/jobs/${job}/approve`, { reason: 'ok' });
    expect(approved.body).toMatchObject({ status: 'Pending' });
    expect(await runJob(t, job)).toMatchObject({ status: 'Completed' });
    expect(await versionsOf(knex, id)).toHaveLength(1);
    expect((await issuerCalls(knex, id)).map((c) => c.method)).toEqual(['issue']);
    expect((await t.api.get(`/api/v1/certificates/${id}`)).body.status).toBe('Active');
  });

  it('issues exactly the approved names: once approved, names, issuer and profile cannot change under the job', async () => {
    const { id, job } = await held({ common_name: 'approved.example.com', sans: ['approved.example.com'] });
    const request = (await second.get(`/api/v1/approvals?job_id=${job}`)).body.data[0];
    expect(request.subject).toEqual({ common_name: 'approved.example.com', sans: ['approved.example.com'], issuer_id: 'iss-issue', profile_id: 'prof-gated' });
    expect((await second.post(`/api/v1/approvals/${request.id}/approve`, {})).status).toBe(200);

    // The requester tries to swap the names (and the issuer, the profile) after the approval.
    for (const edit of [
      { common_name: 'other.example.com', sans: ['other.example.com', 'admin.example.com'] },
      { sans: ['approved.example.com', 'admin.example.com'] },
      { common_name: 'admin.example.com' },
      { issuer_id: 'iss-flaky' },
      { profile_id: null },
    ]) {
      const res = await requester.put(`/api/v1/certificates/${id}`, edit);
      expect(res.status, JSON.stringify(edit)).toBe(409);
      expect(res.body.error.code).toBe('issuance_job_open');
      expect(res.body.error.message).toContain(job);
    }
    // Edits that do not change what is issued still go through.
    expect((await requester.put(`/api/v1/certificates/${id}`, { name: 'renamed', common_name: 'approved.example.com', sans: ['APPROVED.example.com'] })).status).toBe(200);

    expect(await runJob(t, job)).toMatchObject({ status: 'Completed' });
    const [call] = await issuerCalls(knex, id);
    expect(call.request.commonName).toBe('approved.example.com');
    expect(JSON.stringify(call.request)).not.toMatch(/other\.example\.com|admin\.example\.com/);
    expect((await t.api.get(`/api/v1/certificates/${id}`)).body).toMatchObject({ status: 'Active', common_name: 'approved.example.com', sans: ['approved.example.com'] });
  });
});
