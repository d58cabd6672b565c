import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobHandler } from '../../kernel/src/jobs/job-queue.js';
import { auditActions, days, insertIssuedCertificate, seedReferences } from '../lifecycle/cert-fixtures.js';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/*
 * Done means 2, the approval chain: a job on an approval-tier profile is held with an
 * approval request; only someone other than the requester can release it (a key outside
 * the requester's lineage: not one it minted, nor the one that minted it); a rejected
 * or timed-out request ends with the job Cancelled and nothing signed; a decided
 * request cannot be decided again. The Issuance/Renewal handler here only records that
 * it ran, so "never signed" is checked twice: the handler never saw the job, and the
 * certificate has no stored version. The requester and the approver (`second`) are
 * sibling keys, both minted by the initial admin key.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('approval chain', () => {
  let t: TestKernel;
  let knex: Knex;
  let requester: ApiClient;
  let requesterActor: string;
  let second: ApiClient;
  let secondActor: string;
  const ran: string[] = [];
  const record: JobHandler = async (job) => { ran.push(job.id); };

  const versionsOf = async (certId: string) => Number(((await knex('certificate_versions').where({ certificate_id: certId }).count({ n: '*' }).first()) as { n: number }).n);
  const jobRow = async (id: string) => (await knex('jobs').where({ id }).first()) as { status: string; agent_id: string | null; last_error: string | null };
  const requestOfJob = async (jobId: string) => (await t.api.get(`/api/v1/approvals?job_id=${jobId}`)).body.data[0];

  /** A certificate on the approval-tier profile, created by the requester key: its Issuance job and request. */
  async function gated(extra: Record<string, unknown> = {}, by: ApiClient = requester) {
    const created = await by.post('/api/v1/certificates', { name: 'gated', common_name: 'gated.example.com', issuer_id: 'iss-local', profile_id: 'prof-approval', ...extra });
    expect(created.status).toBe(201);
    const [job] = (await t.api.get(`/api/v1/certificates/${created.body.id}/jobs`)).body.data;
    expect(job).toMatchObject({ type: 'Issuance', status: 'AwaitingApproval' });
    return { cert: created.body.id as string, job: job.id as string, approval: (await requestOfJob(job.id)).id as string };
  }

  beforeAll(async () => {
    t = await startTestKernel({
      env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_APPROVAL_TIMEOUT: '2h' },
      start: { jobHandlers: { Issuance: record, Renewal: record } },
    });
    knex = t.kernel.db.knex;
    await seedReferences(knex);
    requester = t.api.withKey(await t.keyWithRole('admin'));
    second = t.api.withKey(await t.keyWithRole('admin'));
    requesterActor = (await requester.get('/api/v1/auth/me')).body.actor;
    secondActor = (await second.get('/api/v1/auth/me')).body.actor;
  });
  afterAll(async () => { await t?.stop(); });

  it('opens a pending cert_issuance request with the held job, in the same transaction', async () => {
    const { cert, job, approval } = await gated();
    const jobBody = (await t.api.get(`/api/v1/jobs/${job}`)).body;
    const res = await t.api.get(`/api/v1/approvals/${approval}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: approval, kind: 'cert_issuance', status: 'pending', job_id: job, certificate_id: cert, profile_id: null, proposed_change: null,
      subject: { common_name: 'gated.example.com', sans: [], issuer_id: 'iss-local', profile_id: 'prof-approval' },
      requested_by: requesterActor, decided_by: null, decided_at: null, reason: null, expires_at: jobBody.approval_expires_at,
      created_at: expect.any(String), updated_at: expect.any(String),
    });
    expect(approval).toMatch(/^apr-[0-9a-f]{16}$/);
    expect(await auditActions(knex, approval)).toEqual(['approval_requested']);
  });

  it('never signs after a rejection, and a rejected request cannot be approved later', async () => {
    const { cert, job, approval } = await gated();
    const res = await second.post(`/api/v1/approvals/${approval}/reject`, { reason: 'not this quarter' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'rejected', decided_by: secondActor, reason: 'not this quarter', decided_at: expect.any(String) });
    expect(await jobRow(job)).toMatchObject({ status: 'Cancelled' });

    await t.kernel.jobs.drainOnce();
    expect(ran).not.toContain(job);
    expect(await versionsOf(cert)).toBe(0);

    for (const [client, path, body] of [
      [second, `/api/v1/approvals/${approval}/approve`, {}],
      [second, `/api/v1/approvals/${approval}/reject`, { reason: 'again' }],
      [second, `/api/v1/jobs/${job}/approve`, {}],
    ] as const) {
      const again = await client.post(path, body);
      expect(again.status, path).toBe(409);
      expect(again.body.error.code).toBe('approval_decided');
    }
    expect(await jobRow(job)).toMatchObject({ status: 'Cancelled' });
    expect((await t.api.get(`/api/v1/approvals/${approval}`)).body).toMatchObject({ status: 'rejected', reason: 'not this quarter' });
    await t.kernel.jobs.drainOnce();
    expect(ran).not.toContain(job);
    expect(await versionsOf(cert)).toBe(0);
    expect(await auditActions(knex, approval)).toEqual(['approval_requested', 'approval_rejected']);
    expect(await auditActions(knex, job)).toEqual(['job_created', 'job_rejected']);
  });

  it('never signs after a timeout, whether the approver or the reaper finds it first', async () => {
    const a = await gated();
    const b = await gated();
    const past = new Date(Date.now() - 1000);
    for (const g of [a, b]) {
      await knex('jobs').where({ id: g.job }).update({ approval_expires_at: past });
      await knex('approval_requests').where({ id: g.approval }).update({ expires_at: past });
    }

    // The approver comes too late: the request is expired and the job cancelled on the spot.
    const late = await second.post(`/api/v1/approvals/${a.approval}/approve`, { reason: 'sorry, was away' });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('approval_expired');
    expect((await t.api.get(`/api/v1/approvals/${a.approval}`)).body).toMatchObject({ status: 'expired', decided_by: 'system' });
    expect(await jobRow(a.job)).toMatchObject({ status: 'Cancelled', last_error: 'approval timed out' });

    // The reaper comes first.
    expect(await t.kernel.jobs.reap()).toMatchObject({ approvalsExpired: 1 });
    expect((await t.api.get(`/api/v1/approvals/${b.approval}`)).body).toMatchObject({ status: 'expired', reason: 'approval timed out' });
    expect(await jobRow(b.job)).toMatchObject({ status: 'Cancelled' });
    const afterReap = await second.post(`/api/v1/jobs/${b.job}/approve`, {});
    expect(afterReap.status).toBe(409);
    expect(afterReap.body.error.code).toBe('approval_decided');

    await t.kernel.jobs.drainOnce();
    for (const g of [a, b]) {
      expect(ran).not.toContain(g.job);
      expect(await versionsOf(g.cert)).toBe(0);
      expect(await auditActions(knex, g.approval)).toEqual(['approval_requested', 'approval_expired']);
    }
  });

  it('refuses the requester, then lets someone else approve; the job runs once released', async () => {
    const { job, approval } = await gated();
    const self = await requester.post(`/api/v1/approvals/${approval}/approve`, {});
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe('self_approval');
    const selfViaJob = await requester.post(`/api/v1/jobs/${job}/approve`, {});
    expect(selfViaJob.status).toBe(403);
    expect(selfViaJob.body.error.code).toBe('self_approval');
    const viewer = await t.api.post(`/api/v1/approvals/${approval}/approve`, {}, { key: await t.keyWithRole('viewer') });
    expect(viewer.status).toBe(403);
    expect(viewer.body.error.code).toBe('forbidden');
    expect(await jobRow(job)).toMatchObject({ status: 'AwaitingApproval' });
    expect((await t.api.get(`/api/v1/approvals/${approval}`)).body.status).toBe('pending');
    await t.kernel.jobs.drainOnce();
    expect(ran).not.toContain(job);

    const ok = await second.post(`/api/v1/approvals/${approval}/approve`, { reason: 'change ticket 42' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 'approved', decided_by: secondActor, reason: 'change ticket 42' });
    // No agent on the certificate: the job is runnable at once.
    expect(await jobRow(job)).toMatchObject({ status: 'Pending' });
    await t.kernel.jobs.drainOnce();
    expect(ran.filter((id) => id === job)).toHaveLength(1);

    const twice = await second.post(`/api/v1/approvals/${approval}/approve`, {});
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('approval_decided');
    const rejectLater = await second.post(`/api/v1/approvals/${approval}/reject`, { reason: 'changed my mind' });
    expect(rejectLater.status).toBe(409);
    expect((await t.api.get(`/api/v1/approvals/${approval}`)).body).toMatchObject({ status: 'approved', reason: 'change ticket 42' });
    expect(await auditActions(knex, approval)).toEqual(['approval_requested', 'approval_approved']);
  });

  it('decides through /jobs/:id/approve and /jobs/:id/reject as well', async () => {
    const withAgent = await gated({ agent_id: 'agent-1' });
    const res = await second.post(`/api/v1/jobs/${withAgent.job}/approve`, {});
    expect(res.status).toBe(200);
    // An agent makes the key: after approval the job waits for its CSR, routed to it.
    expect(res.body).toMatchObject({ id: withAgent.job, status: 'AwaitingCSR', agent_id: 'agent-1' });
    expect((await t.api.get(`/api/v1/approvals/${withAgent.approval}`)).body).toMatchObject({ status: 'approved', decided_by: secondActor });

    const other = await gated();
    const noReason = await second.post(`/api/v1/jobs/${other.job}/reject`, {});
    expect(noReason.status).toBe(400);
    expect(noReason.body.error.code).toBe('validation_failed');
    const rejected = await second.post(`/api/v1/jobs/${other.job}/reject`, { reason: 'duplicate' });
    expect(rejected.status).toBe(200);
    expect(rejected.body).toMatchObject({ status: 'Cancelled', last_error: 'duplicate' });
    expect((await t.api.get(`/api/v1/approvals/${other.approval}`)).body).toMatchObject({ status: 'rejected', reason: 'duplicate' });

    const plain = (await t.api.post('/api/v1/certificates', { name: 'plain', common_name: 'plain.example.com', issuer_id: 'iss-local' })).body.id;
    const [plainJob] = (await t.api.get(`/api/v1/certificates/${plain}/jobs`)).body.data;
    const notHeld = await second.post(`/api/v1/jobs/${plainJob.id}/approve`, {});
    expect(notHeld.status).toBe(409);
    expect(notHeld.body.error.code).toBe('invalid_state');
    expect((await second.post('/api/v1/jobs/job-nope/approve', {})).status).toBe(404);
    expect((await second.post('/api/v1/approvals/apr-nope/approve', {})).status).toBe(404);
  });

  it('keeps a queued job on its profile: moving the certificate to an approval-tier profile waits until the job is cancelled', async () => {
    const plain = (await requester.post('/api/v1/certificates', { name: 'moved', common_name: 'moved.example.com', issuer_id: 'iss-local', profile_id: 'prof-std' })).body.id;
    const [job] = (await t.api.get(`/api/v1/certificates/${plain}/jobs`)).body.data;
    expect(job.status).toBe('Pending');
    const moved = await requester.put(`/api/v1/certificates/${plain}`, { profile_id: 'prof-approval' });
    expect(moved.status).toBe(409);
    expect(moved.body.error.code).toBe('issuance_job_open');
    expect(await jobRow(job.id)).toMatchObject({ status: 'Pending' });
    expect((await requester.post(`/api/v1/jobs/${job.id}/cancel`, {})).status).toBe(200);
    expect((await requester.put(`/api/v1/certificates/${plain}`, { profile_id: 'prof-approval' })).status).toBe(200);
    // Asking again on the approval-tier profile holds the new job, with its request.
    const again = await requester.post(`/api/v1/certificates/${plain}/renew`);
    expect(again.body).toMatchObject({ type: 'Issuance', status: 'AwaitingApproval' });
    expect(await requestOfJob(again.body.id)).toMatchObject({ kind: 'cert_issuance', status: 'pending', certificate_id: plain, requested_by: requesterActor });
    expect((await requester.post(`/api/v1/jobs/${again.body.id}/approve`, {})).status).toBe(403);
    expect((await second.post(`/api/v1/jobs/${again.body.id}/approve`, {})).body.status).toBe('Pending');
  });

  it('refuses keys in the requester\'s lineage (minted by it, or its minter, at any depth); a sibling or cousin key may approve', async () => {
    const mint = async (by: ApiClient, name: string) => {
      const res = await by.post('/api/v1/auth/keys', { name, roles: [{ role_id: 'role-admin' }] });
      expect(res.status, res.text).toBe(201);
      return { key: res.body.key as string, id: res.body.id as string };
    };
    const child = await mint(requester, 'minted-by-requester');
    const grandchild = await mint(requester.withKey(child.key), 'minted-by-child');
    const { job, approval } = await gated();
    for (const key of [child.key, grandchild.key, t.adminKey]) {
      for (const path of [`/api/v1/approvals/${approval}/approve`, `/api/v1/jobs/${job}/approve`]) {
        const res = await t.api.post(path, {}, { key });
        expect(res.status, path).toBe(403);
        expect(res.body.error.code).toBe('self_approval');
      }
    }
    // The queue refuses it too, whoever calls it.
    expect(await t.kernel.jobs.approve(job, { actor: { actor: grandchild.id, actor_type: 'user' } })).toMatchObject({ ok: false, reason: 'same_actor' });
    expect(await jobRow(job)).toMatchObject({ status: 'AwaitingApproval' });
    expect((await t.api.get(`/api/v1/approvals/${approval}`)).body.status).toBe('pending');
    expect((await second.post(`/api/v1/approvals/${approval}/approve`, {})).status).toBe(200);

    // The grandchild's own request: its ancestors cannot approve it, a cousin (second) can.
    const mine = await gated({}, requester.withKey(grandchild.key));
    for (const key of [child.key, t.adminKey]) expect((await t.api.post(`/api/v1/approvals/${mine.approval}/approve`, {}, { key })).status).toBe(403);
    expect((await second.post(`/api/v1/approvals/${mine.approval}/approve`, {})).status).toBe(200);

    // A request made by the system (the expiry loop) is in nobody's lineage, though the first admin key was minted by 'system'.
    const bySystem = await gated();
    await knex('jobs').where({ id: bySystem.job }).update({ requested_by: 'system' });
    await knex('approval_requests').where({ id: bySystem.approval }).update({ requested_by: 'system' });
    const sys = await t.api.post(`/api/v1/approvals/${bySystem.approval}/approve`, {});
    expect(sys.status, sys.text).toBe(200);
  });

  it('approves only what was asked for: the recorded names must still be the certificate\'s', async () => {
    const { cert, job, approval } = await gated({ common_name: 'approved.example.com', sans: ['approved.example.com'] });
    // Through the API the names cannot change while the job is open...
    const edit = await requester.put(`/api/v1/certificates/${cert}`, { common_name: 'other.example.com', sans: ['other.example.com', 'admin.example.com'] });
    expect(edit.status).toBe(409);
    expect(edit.body.error.code).toBe('issuance_job_open');
    // ...and should they change some other way, the approval is refused and nothing is released.
    await knex('managed_certificates').where({ id: cert }).update({ sans: JSON.stringify(['approved.example.com', 'admin.example.com']) });
    const res = await second.post(`/api/v1/approvals/${approval}/approve`, {});
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('approval_subject_changed');
    expect(await jobRow(job)).toMatchObject({ status: 'AwaitingApproval' });
    expect((await t.api.get(`/api/v1/approvals/${approval}`)).body).toMatchObject({ status: 'pending', subject: { common_name: 'approved.example.com', sans: ['approved.example.com'] } });
    expect((await second.post(`/api/v1/approvals/${approval}/reject`, { reason: 'names changed' })).status).toBe(200);
  });

  it('settles a renewing certificate whose renewal is rejected or times out, with no new version', async () => {
    const certs: string[] = [];
    for (const n of [1, 2]) {
      const id = await insertIssuedCertificate(knex, { id: `mc-renew-gated-${n}`, profile_id: 'prof-approval', status: 'Expiring', expires_at: days(5) });
      await knex('certificate_versions').insert({
        id: `cv-renew-gated-${n}`, certificate_id: id, serial_number: `0${n}`, fingerprint_sha256: 'ab'.repeat(32), not_before: days(-60), not_after: days(5), pem_chain: 'x',
      });
      certs.push(id);
    }
    const jobs: string[] = [];
    for (const id of certs) {
      const renew = await t.api.post(`/api/v1/certificates/${id}/renew`);
      expect(renew.status).toBe(202);
      expect(renew.body).toMatchObject({ type: 'Renewal', status: 'AwaitingApproval' });
      expect((await t.api.get(`/api/v1/certificates/${id}`)).body.status).toBe('RenewalInProgress');
      jobs.push(renew.body.id);
    }
    const rejected = await second.post(`/api/v1/jobs/${jobs[0]}/reject`, { reason: 'freeze' });
    expect(rejected.status).toBe(200);
    expect((await t.api.get(`/api/v1/certificates/${certs[0]}`)).body.status).toBe('Expiring');

    await knex('jobs').where({ id: jobs[1] }).update({ approval_expires_at: new Date(Date.now() - 1000) });
    expect(await t.kernel.jobs.reap()).toMatchObject({ approvalsExpired: 1 });
    expect((await t.api.get(`/api/v1/certificates/${certs[1]}`)).body.status).toBe('Expiring');
    expect((await requestOfJob(jobs[1])).status).toBe('expired');

    await t.kernel.jobs.drainOnce();
    for (const [i, id] of certs.entries()) {
      expect(ran).not.toContain(jobs[i]);
      expect(await versionsOf(id)).toBe(1);
      expect(await auditActions(knex, id)).toContain('certificate_status_changed');
    }
  });

  it('lists and filters requests, scoped to what the caller may see', async () => {
    const pending = await t.api.get('/api/v1/approvals?status=pending&kind=cert_issuance&per_page=500');
    expect(pending.status).toBe(200);
    expect(pending.body.data.length).toBeGreaterThan(0);
    expect(pending.body.data.every((r: { status: string; kind: string }) => r.status === 'pending' && r.kind === 'cert_issuance')).toBe(true);
    const statuses = new Set((await t.api.get('/api/v1/approvals?per_page=500')).body.data.map((r: { status: string }) => r.status));
    expect([...statuses].sort()).toEqual(['approved', 'expired', 'pending', 'rejected']);
    expect((await t.api.get('/api/v1/approvals?kind=bogus')).status).toBe(400);

    // An operator scoped to another profile sees none of these, and reads them as missing.
    const scoped = t.api.withKey(await t.keyWithRole('operator', { scope_type: 'profile', scope_id: 'prof-web' }));
    expect((await scoped.get('/api/v1/approvals')).body.data).toEqual([]);
    const { approval } = await gated();
    expect((await scoped.get(`/api/v1/approvals/${approval}`)).status).toBe(404);
    expect((await scoped.post(`/api/v1/approvals/${approval}/approve`, {})).status).toBe(404);
    expect((await t.api.get(`/api/v1/approvals/${approval}`)).body.status).toBe('pending');
  });

  it('keeps a decided request immutable in the database itself', async () => {
    const decided = (await knex('approval_requests').whereNot({ status: 'pending' }).first('id')) as { id: string };
    await expect(knex('approval_requests').where({ id: decided.id }).update({ status: 'approved' })).rejects.toThrow(/already/);
    await expect(knex('approval_requests').where({ id: decided.id }).update({ reason: 'rewritten' })).rejects.toThrow(/already/);
  });
});
