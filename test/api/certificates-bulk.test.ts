import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditActions, days, insertIssuedCertificate, seedReferences, writeCounts } from '../lifecycle/cert-fixtures.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

const base = '/api/v1/certificates';

describe.skipIf(POSTGRES_UNAVAILABLE)('bulk renew and reassign', () => {
  let t: TestKernel;
  let knex: Knex;
  let adminActor: string;
  const statusOf = async (id: string) => ((await knex('managed_certificates').where({ id }).first('status')) as { status: string }).status;
  const jobsOf = (id: string) => knex('jobs').where({ certificate_id: id }).orderBy('created_at') as Promise<{ id: string; type: string; status: string }[]>;
  const lastBulkEvent = async (action: string) => (await knex('audit_events').where({ action }).orderBy('seq', 'desc').first()) as { actor: string; details: Record<string, any> };

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    knex = t.kernel.db.knex;
    await seedReferences(knex);
    adminActor = (await t.api.get('/api/v1/auth/me')).body.actor;
    const cert = (id: string, fields: Record<string, unknown>) => insertIssuedCertificate(knex, { id, expires_at: days(40), ...fields });
    await cert('mc-web-1', { profile_id: 'prof-web', owner_id: 'owner-a' });
    await cert('mc-web-2', { profile_id: 'prof-web', owner_id: 'owner-b', agent_id: 'agent-1' });
    await cert('mc-web-revoked', { profile_id: 'prof-web', owner_id: 'owner-a', status: 'Revoked', revoked_at: new Date() });
    await cert('mc-std-1', { profile_id: 'prof-std', owner_id: 'owner-a' });
    await cert('mc-std-2', { profile_id: 'prof-std', owner_id: 'owner-c' });
    await cert('mc-gated', { profile_id: 'prof-approval', owner_id: 'owner-b' });
    await cert('mc-never', { profile_id: 'prof-std', owner_id: 'owner-b', status: 'Pending', expires_at: null, serial_number: null });
    await cert('mc-archived', { profile_id: 'prof-std', owner_id: 'owner-a', status: 'Archived' });
    await cert('mc-deployed', { profile_id: 'prof-std', owner_id: 'owner-c' });
    await knex('certificate_target_mappings').insert({ certificate_id: 'mc-deployed', target_id: 'tgt-2' });
  });
  afterAll(async () => { await t?.stop(); });

  it('renews what the criteria select, reports the rest per certificate, and audits the request once', async () => {
    const res = await t.api.post(`${base}/bulk-renew`, { profile_id: 'prof-web' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ criteria: { profile_id: 'prof-web' }, matched_count: 3, affected_count: 2 });
    expect(res.body.jobs).toEqual([
      { certificate_id: 'mc-web-1', job_id: expect.stringMatching(/^job-/), type: 'Renewal', status: 'Pending' },
      { certificate_id: 'mc-web-2', job_id: expect.stringMatching(/^job-/), type: 'Renewal', status: 'AwaitingCSR' },
    ]);
    expect(res.body.failed).toEqual([{ certificate_id: 'mc-web-revoked', code: 'invalid_state', message: expect.stringContaining('Revoked') }]);
    expect(await statusOf('mc-web-1')).toBe('RenewalInProgress');
    expect(await statusOf('mc-web-revoked')).toBe('Revoked');
    expect(await jobsOf('mc-web-revoked')).toEqual([]);
    const event = await lastBulkEvent('bulk_renewal_initiated');
    expect(event.actor).toBe(adminActor);
    expect(event.details).toMatchObject({ criteria: { profile_id: 'prof-web' }, matched: 3, affected: 2, failed: ['mc-web-revoked'] });
    expect(await auditActions(knex, 'mc-web-1')).toEqual(['certificate_renewal_requested']);

    // Again: no second job for a certificate that already has one open.
    const again = await t.api.post(`${base}/bulk-renew`, { profile_id: 'prof-web' });
    expect(again.body).toMatchObject({ matched_count: 3, affected_count: 0, jobs: [] });
    expect(again.body.failed.map((f: { certificate_id: string; code: string }) => [f.certificate_id, f.code])).toEqual([
      ['mc-web-1', 'job_already_open'], ['mc-web-2', 'job_already_open'], ['mc-web-revoked', 'invalid_state'],
    ]);
    expect(await jobsOf('mc-web-1')).toHaveLength(1);
  });

  it('combines explicit ids with filters; issues never-issued ones; holds approval-tier ones for approval', async () => {
    const res = await t.api.post(`${base}/bulk-renew`, { certificate_ids: ['mc-std-1', 'mc-never', 'mc-gated', 'mc-std-2', 'mc-nope'], team_id: 'team-a' });
    // owner-a is in team-a; owner-b in team-b; owner-c in no team.
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ matched_count: 1, affected_count: 1 });
    expect(res.body.jobs.map((j: { certificate_id: string }) => j.certificate_id)).toEqual(['mc-std-1']);
    expect(res.body.failed.map((f: { certificate_id: string; code: string }) => [f.certificate_id, f.code])).toEqual([
      ['mc-gated', 'not_matched'], ['mc-never', 'not_matched'], ['mc-nope', 'not_found'], ['mc-std-2', 'not_matched'],
    ]);

    const ids = await t.api.post(`${base}/bulk-renew`, { certificate_ids: ['mc-never', 'mc-gated'] });
    expect(ids.body.jobs).toEqual([
      { certificate_id: 'mc-gated', job_id: expect.any(String), type: 'Renewal', status: 'AwaitingApproval' },
      { certificate_id: 'mc-never', job_id: expect.any(String), type: 'Issuance', status: 'Pending' },
    ]);
    expect(await statusOf('mc-never')).toBe('Pending');
    const gatedJob = ids.body.jobs[0].job_id;
    const [request] = (await t.api.get(`/api/v1/approvals?job_id=${gatedJob}`)).body.data;
    expect(request).toMatchObject({ kind: 'cert_issuance', status: 'pending', requested_by: adminActor, certificate_id: 'mc-gated' });

    // agent_id also selects certificates deployed to that agent's targets.
    const byAgent = await t.api.post(`${base}/bulk-renew`, { agent_id: 'agent-2' });
    expect(byAgent.body.jobs.map((j: { certificate_id: string }) => j.certificate_id)).toEqual(['mc-deployed']);
  });

  it('refuses requests without criteria or with bad ones, writing nothing', async () => {
    const viewerKey = await t.keyWithRole('viewer');
    const before = await writeCounts(knex);
    const cases: [string, unknown, number, string][] = [
      ['bulk-renew', {}, 400, 'validation_failed'],
      ['bulk-renew', { certificate_ids: [] }, 400, 'validation_failed'],
      ['bulk-renew', { profile_id: 'prof-web', colour: 'red' }, 400, 'validation_failed'],
      ['bulk-renew', { status: 'Sleeping' }, 400, 'validation_failed'],
      ['bulk-reassign', { new_owner_id: 'owner-b' }, 400, 'validation_failed'],
      ['bulk-reassign', { profile_id: 'prof-std' }, 400, 'validation_failed'],
      ['bulk-reassign', { profile_id: 'prof-std', new_owner_id: 'owner-nope' }, 422, 'reference_not_found'],
    ];
    for (const [path, body, status, code] of cases) {
      const res = await t.api.post(`${base}/${path}`, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.code).toBe(code);
    }
    const viewer = await t.api.post(`${base}/bulk-renew`, { profile_id: 'prof-std' }, { key: viewerKey });
    expect(viewer.status).toBe(403);
    expect(await writeCounts(knex)).toEqual(before);
  });

  it('reassigns owners, leaving archived and already-owned certificates reported', async () => {
    const res = await t.api.post(`${base}/bulk-reassign`, { profile_id: 'prof-std', new_owner_id: 'owner-c' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ criteria: { profile_id: 'prof-std' }, new_owner_id: 'owner-c', matched_count: 5, affected_count: 2 });
    expect(res.body.updated.sort()).toEqual(['mc-never', 'mc-std-1']);
    expect(res.body.unchanged.sort()).toEqual(['mc-deployed', 'mc-std-2']);
    expect(res.body.failed).toEqual([{ certificate_id: 'mc-archived', code: 'invalid_state', message: expect.stringContaining('archived') }]);
    expect((await t.api.get(`${base}/mc-std-1`)).body.owner_id).toBe('owner-c');
    expect((await knex('managed_certificates').where({ id: 'mc-archived' }).first('owner_id')).owner_id).toBe('owner-a');
    const event = await lastBulkEvent('bulk_reassignment');
    expect(event.details).toMatchObject({ criteria: { profile_id: 'prof-std' }, new_owner_id: 'owner-c', affected: 2, failed: ['mc-archived'] });
    expect(await auditActions(knex, 'mc-std-1')).toContain('certificate_updated');

    const cleared = await t.api.post(`${base}/bulk-reassign`, { certificate_ids: ['mc-std-1'], new_owner_id: null });
    expect(cleared.body).toMatchObject({ affected_count: 1, updated: ['mc-std-1'] });
    expect((await t.api.get(`${base}/mc-std-1`)).body.owner_id).toBeNull();
  });

  it('keeps a scoped caller inside its scope', async () => {
    const scoped = t.api.withKey(await t.keyWithRole('operator', { scope_type: 'profile', scope_id: 'prof-web' }));
    const res = await scoped.post(`${base}/bulk-reassign`, { certificate_ids: ['mc-web-1', 'mc-std-2'], new_owner_id: 'owner-b' });
    expect(res.status).toBe(200);
    expect(res.body.updated).toEqual(['mc-web-1']);
    expect(res.body.failed).toEqual([{ certificate_id: 'mc-std-2', code: 'not_found', message: 'Certificate mc-std-2 not found' }]);
    expect((await t.api.get(`${base}/mc-std-2`)).body.owner_id).toBe('owner-c');
  });
});
