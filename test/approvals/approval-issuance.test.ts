import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificate, issuanceEnv, issuerCalls, runJob, seedIssuance, versionsOf } from '../lifecycle/issuance-support.js';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/*
 * The approval chain against the real issuance path (server key generation, the
 * fixture CA plugin): a rejected or timed-out request leaves the issuer never asked
 * and no version stored; an approved one is signed and stored.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('approvals in front of real issuance', () => {
  let t: TestKernel;
  let knex: Knex;
  let second: ApiClient;

  const held = async () => {
    const { id, job } = await createCertificate(t, { profile_id: 'prof-gated' });
    expect(job.status).toBe('AwaitingApproval');
    return { id, job: job.id };
  };

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv({ CERTCTL_KEYGEN_MODE: 'server' }) });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
    await knex('certificate_profiles').insert({ id: 'prof-gated', name: 'Two-person', requires_approval: true });
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
    expect((await t.api.post(`/api/v1/jobs/${job}/approve`, {})).status).toBe(403);
    await t.kernel.jobs.drainOnce();
    expect(await versionsOf(knex, id)).toEqual([]);
    const approved = await second.post(`/api/v1/jobs/${job}/approve`, { reason: 'ok' });
    expect(approved.body).toMatchObject({ status: 'Pending' });
    expect(await runJob(t, job)).toMatchObject({ status: 'Completed' });
    expect(await versionsOf(knex, id)).toHaveLength(1);
    expect((await issuerCalls(knex, id)).map((c) => c.method)).toEqual(['issue']);
    expect((await t.api.get(`/api/v1/certificates/${id}`)).body.status).toBe('Active');
  });
});
