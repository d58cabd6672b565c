import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions, insertIssuedCertificate, seedReferences, writeCounts } from '../lifecycle/cert-fixtures.js';

const base = '/api/v1/certificates';
const jobsOf = async (t: TestKernel, id: string) => (await t.api.get(`${base}/${id}/jobs`)).body.data as any[];

describe.skipIf(POSTGRES_UNAVAILABLE)('certificates API (agent key generation)', () => {
  let t: TestKernel;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_APPROVAL_TIMEOUT: '2h' } });
    await seedReferences(t.kernel.db.knex);
  });
  afterAll(async () => { await t?.stop(); });

  it('creates a Pending certificate with an AwaitingCSR issuance job when an agent is assigned', async () => {
    const res = await t.api.post(base, {
      name: 'api prod', common_name: 'api.example.com', sans: ['API.example.com', '*.api.example.com', '10.0.0.1', 'ops@example.com', 'api.example.com'],
      environment: 'production', owner_id: 'owner-a', issuer_id: 'iss-local', profile_id: 'prof-std', agent_id: 'agent-1',
      tags: { app: 'api' }, target_ids: ['tgt-1'],
    });
    expect(res.status).toBe(201);
    const c = res.body;
    expect(c.id).toMatch(/^mc-[0-9a-f]{16}$/);
    expect(c).toMatchObject({
      name: 'api prod', common_name: 'api.example.com', status: 'Pending', environment: 'production', owner_id: 'owner-a',
      issuer_id: 'iss-local', profile_id: 'prof-std', renewal_policy_id: null, agent_id: 'agent-1', tags: { app: 'api' },
      serial_number: null, expires_at: null, revoked_at: null,
    });
    // Lower-cased and de-duplicated, order kept.
    expect(c.sans).toEqual(['api.example.com', '*.api.example.com', '10.0.0.1', 'ops@example.com']);
    expect(Object.keys(c)).toEqual([
      'id', 'name', 'common_name', 'sans', 'environment', 'status', 'owner_id', 'issuer_id', 'profile_id', 'renewal_policy_id',
      'agent_id', 'serial_number', 'fingerprint_sha256', 'key_algorithm', 'key_size', 'not_before', 'expires_at', 'tags',
      'last_renewal_at', 'last_deployment_at', 'revoked_at', 'revocation_reason', 'created_at', 'updated_at',
    ]);
    const jobs = await jobsOf(t, c.id);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ type: 'Issuance', status: 'AwaitingCSR', certificate_id: c.id, agent_id: 'agent-1', approval_expires_at: null, requested_by: expect.any(String) });
    expect(jobs[0].payload).toMatchObject({ keygen: 'agent', trigger: 'created' });
    expect((await t.api.get(`${base}/${c.id}/targets`)).body.data.map((x: any) => x.id)).toEqual(['tgt-1']);
    expect(await auditActions(t.kernel.db.knex, c.id)).toEqual(['certificate_created']);
    expect(await auditActions(t.kernel.db.knex, jobs[0].id)).toEqual(['job_created']);
  });

  it('queues a plain Pending job when no agent is assigned, even in agent mode', async () => {
    const res = await t.api.post(base, { id: 'mc-no-agent', name: 'no agent', common_name: 'na.example.com', issuer_id: 'iss-local' });
    expect(res.status).toBe(201);
    expect(res.body.id).toBe('mc-no-agent');
    const [job] = await jobsOf(t, 'mc-no-agent');
    expect(job).toMatchObject({ type: 'Issuance', status: 'Pending', agent_id: null });
    expect((await t.api.post(base, { id: 'mc-no-agent', name: 'dup', common_name: 'dup.example.com', issuer_id: 'iss-local' })).status).toBe(409);
  });

  it('holds the job for approval when the profile requires it', async () => {
    const before = Date.now();
    const res = await t.api.post(base, { name: 'approved', common_name: 'appr.example.com', issuer_id: 'iss-local', profile_id: 'prof-approval', agent_id: 'agent-1' });
    expect(res.status).toBe(201);
    const [job] = await jobsOf(t, res.body.id);
    expect(job.status).toBe('AwaitingApproval');
    // The agent is still named: after approval it is the agent's CSR that is awaited.
    expect(job.agent_id).toBe('agent-1');
    const expires = new Date(job.approval_expires_at).getTime();
    expect(expires).toBeGreaterThanOrEqual(before + 2 * 3_600_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 2 * 3_600_000 + 1000);
  });

  it('refuses bad input with catalogued errors and writes nothing', async () => {
    const knex = t.kernel.db.knex;
    const before = await writeCounts(knex);
    const cases: [unknown, number, string][] = [
      [{ name: 'x', common_name: 'x.example.com' }, 400, 'validation_failed'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', bogus: 1 }, 400, 'validation_failed'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', sans: ['ok.example.com', 'not a name', 'a..b', '-x.example.com', 'x@'] }, 400, 'validation_failed'],
      [{ name: 'x', common_name: 'x'.repeat(65), issuer_id: 'iss-local' }, 400, 'validation_failed'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', tags: { a: 1 } }, 400, 'validation_failed'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', id: 'Bad_Id' }, 400, 'validation_failed'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-nope' }, 422, 'reference_not_found'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', owner_id: 'owner-nope', profile_id: 'prof-nope' }, 422, 'reference_not_found'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', agent_id: 'agent-nope' }, 422, 'reference_not_found'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', renewal_policy_id: 'rp-nope' }, 422, 'reference_not_found'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', target_ids: ['tgt-1', 'tgt-nope'] }, 422, 'reference_not_found'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-off' }, 409, 'invalid_state'],
      [{ name: 'x', common_name: 'x.example.com', issuer_id: 'iss-local', profile_id: 'prof-off' }, 409, 'invalid_state'],
    ];
    for (const [body, status, code] of cases) {
      const res = await t.api.post(base, body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status, code });
    }
    const badSans = await t.api.post(base, cases[2][0]);
    expect(badSans.body.error.details.map((d: any) => d.path)).toEqual(['/sans/1', '/sans/2', '/sans/3', '/sans/4']);
    const missing = await t.api.post(base, cases[7][0]);
    expect(missing.body.error.details.map((d: any) => d.path).sort()).toEqual(['/owner_id', '/profile_id']);
    expect(await writeCounts(knex)).toEqual(before);
  });

  it('reads one certificate and 404s an unknown one', async () => {
    const id = (await t.api.post(base, { name: 'read', common_name: 'read.example.com', issuer_id: 'iss-local' })).body.id;
    const res = await t.api.get(`${base}/${id}`);
    expect(res.status).toBe(200);
    expect(res.body.common_name).toBe('read.example.com');
    const missing = await t.api.get(`${base}/mc-does-not-exist`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
  });

  it('edits metadata at any time but issuer, profile and common name only while Pending, and names never under an open job', async () => {
    const id = (await t.api.post(base, { name: 'edit', common_name: 'edit.example.com', issuer_id: 'iss-local', profile_id: 'prof-std' })).body.id;
    // Its Issuance job is queued for these names: they stay as they are until that job ends.
    const [queued] = await jobsOf(t, id);
    const unchanged = await writeCounts(t.kernel.db.knex);
    for (const body of [{ common_name: 'other.example.com' }, { sans: ['b.example.com'] }, { issuer_id: 'iss-other' }, { profile_id: 'prof-web' }, { profile_id: null }]) {
      const res = await t.api.put(`${base}/${id}`, { name: 'edited', ...body });
      expect(res.status, JSON.stringify(body)).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'issuance_job_open', message: expect.stringContaining(queued.id) });
    }
    expect(await writeCounts(t.kernel.db.knex)).toEqual(unchanged);
    expect((await t.api.get(`${base}/${id}`)).body).toMatchObject({ name: 'edit', common_name: 'edit.example.com', sans: [], profile_id: 'prof-std' });
    expect((await t.api.post(`/api/v1/jobs/${queued.id}/cancel`, {})).status).toBe(200);

    const r1 = await t.api.put(`${base}/${id}`, { name: 'edited', owner_id: 'owner-b', renewal_policy_id: 'rp-auto', environment: 'staging', tags: { tier: '1' }, sans: ['B.example.com'], issuer_id: 'iss-other', profile_id: 'prof-web' });
    expect(r1.status).toBe(200);
    expect(r1.body).toMatchObject({ name: 'edited', owner_id: 'owner-b', renewal_policy_id: 'rp-auto', environment: 'staging', tags: { tier: '1' }, sans: ['b.example.com'], issuer_id: 'iss-other', profile_id: 'prof-web' });
    const r2 = await t.api.put(`${base}/${id}`, { owner_id: null, renewal_policy_id: null });
    expect(r2.body).toMatchObject({ owner_id: null, renewal_policy_id: null, name: 'edited' });

    const issued = await insertIssuedCertificate(t.kernel.db.knex, { profile_id: 'prof-std' });
    expect((await t.api.put(`${base}/${issued}`, { name: 'renamed', sans: ['new.example.com'] })).status).toBe(200);
    // A renewal under way fixes the SANs it was asked for too.
    const renewal = (await t.api.post(`${base}/${issued}/renew`)).body;
    const refused = await t.api.put(`${base}/${issued}`, { sans: ['new.example.com', 'more.example.com'] });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('issuance_job_open');
    expect((await t.api.put(`${base}/${issued}`, { name: 'renamed again', sans: ['NEW.example.com'] })).status).toBe(200);
    expect((await t.api.post(`/api/v1/jobs/${renewal.id}/cancel`, {})).status).toBe(200);
    for (const body of [{ issuer_id: 'iss-other' }, { profile_id: 'prof-web' }, { common_name: 'other.example.com' }]) {
      const res = await t.api.put(`${base}/${issued}`, body);
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('invalid_state');
    }
    // Unchanged values are not changes.
    expect((await t.api.put(`${base}/${issued}`, { issuer_id: 'iss-local', profile_id: 'prof-std' })).status).toBe(200);

    const before = await writeCounts(t.kernel.db.knex);
    expect((await t.api.put(`${base}/${id}`, {})).status).toBe(400);
    expect((await t.api.put(`${base}/${id}`, { agent_id: 'agent-nope' })).status).toBe(422);
    expect((await t.api.put(`${base}/${id}`, { sans: ['bad name'] })).status).toBe(400);
    expect((await t.api.put(`${base}/${id}`, { issuer_id: 'iss-off' })).status).toBe(409);
    expect((await t.api.put(`${base}/mc-nope`, { name: 'x' })).status).toBe(404);
    expect(await writeCounts(t.kernel.db.knex)).toEqual(before);
  });

  it('reroutes a queued issuance job when its agent changes; its profile cannot change under it', async () => {
    const id = (await t.api.post(base, { name: 'reroute', common_name: 'reroute.example.com', issuer_id: 'iss-local', profile_id: 'prof-std' })).body.id;
    expect((await jobsOf(t, id))[0].status).toBe('Pending');
    await t.api.put(`${base}/${id}`, { agent_id: 'agent-2' });
    expect((await jobsOf(t, id))[0]).toMatchObject({ status: 'AwaitingCSR', agent_id: 'agent-2' });
    // Switching to an approval profile cannot let the queued job skip the approval: it is refused.
    const moved = await t.api.put(`${base}/${id}`, { profile_id: 'prof-approval' });
    expect(moved.status).toBe(409);
    expect(moved.body.error.code).toBe('issuance_job_open');
    const [job] = await jobsOf(t, id);
    expect(job).toMatchObject({ status: 'AwaitingCSR', approval_expires_at: null });
    expect(await auditActions(t.kernel.db.knex, job.id)).toEqual(['job_created', 'job_rerouted']);
  });

  it('deletes a never-issued certificate with its jobs, and refuses an issued one', async () => {
    const knex = t.kernel.db.knex;
    const id = (await t.api.post(base, { name: 'del', common_name: 'del.example.com', issuer_id: 'iss-local', target_ids: ['tgt-1', 'tgt-2'] })).body.id;
    const [job] = await jobsOf(t, id);
    const del = await t.api.delete(`${base}/${id}`);
    expect(del.status).toBe(204);
    expect((await t.api.get(`${base}/${id}`)).status).toBe(404);
    expect(await knex('jobs').where({ id: job.id }).first()).toBeUndefined();
    expect(await knex('certificate_target_mappings').where({ certificate_id: id }).first()).toBeUndefined();
    expect(await auditActions(knex, id)).toEqual(['certificate_created', 'certificate_deleted']);
    expect((await knex('audit_events').where({ resource_id: id, action: 'certificate_deleted' }).first()).details.deleted_jobs).toEqual([job.id]);

    const issued = await insertIssuedCertificate(knex);
    await knex('certificate_versions').insert({ id: `cv-${issued}`, certificate_id: issued, serial_number: '01', fingerprint_sha256: 'ab', not_before: new Date(), not_after: new Date(Date.now() + 1e9), pem_chain: '-----BEGIN CERTIFICATE-----' });
    const refused = await t.api.delete(`${base}/${issued}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('invalid_state');
    expect(refused.body.error.message).toMatch(/archive/);
    expect((await t.api.get(`${base}/${issued}`)).status).toBe(200);
    const versions = await t.api.get(`${base}/${issued}/versions`);
    expect(versions.status).toBe(200);
    expect(versions.body).toMatchObject({ total: 1, data: [{ id: `cv-${issued}`, certificate_id: issued, serial_number: '01' }] });
    expect((await t.api.delete(`${base}/mc-nope`)).status).toBe(404);
  });

  it('archives a certificate and cancels its open jobs', async () => {
    const knex = t.kernel.db.knex;
    const id = (await t.api.post(base, { name: 'arch', common_name: 'arch.example.com', issuer_id: 'iss-local', agent_id: 'agent-1' })).body.id;
    const [job] = await jobsOf(t, id);
    const res = await t.api.post(`${base}/${id}/archive`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('Archived');
    const after = (await t.api.get(`/api/v1/jobs/${job.id}`)).body;
    expect(after.status).toBe('Cancelled');
    expect(after.completed_at).not.toBeNull();
    expect(await auditActions(knex, id)).toEqual(['certificate_created', 'certificate_archived']);
    expect(await auditActions(knex, job.id)).toEqual(['job_created', 'job_cancelled']);
    expect((await t.api.post(`${base}/${id}/archive`)).status).toBe(409);
    expect((await t.api.put(`${base}/${id}`, { name: 'x' })).status).toBe(409);
    expect((await t.api.post(`${base}/${id}/renew`)).status).toBe(409);
    expect((await t.api.put(`${base}/${id}/targets`, { target_ids: [] })).status).toBe(409);
  });

  it('waits for a running job before archiving', async () => {
    const knex = t.kernel.db.knex;
    const id = await insertIssuedCertificate(knex);
    const job = (await t.api.post(`${base}/${id}/renew`)).body;
    await knex('jobs').where({ id: job.id }).update({ status: 'Running' });
    const before = await writeCounts(knex);
    const res = await t.api.post(`${base}/${id}/archive`);
    expect(res.status).toBe(409);
    expect(res.body.error.message).toContain(job.id);
    expect(await writeCounts(knex)).toEqual(before);
    expect((await t.api.get(`${base}/${id}`)).body.status).toBe('RenewalInProgress');
  });

  it('replaces the target set', async () => {
    const knex = t.kernel.db.knex;
    const id = (await t.api.post(base, { name: 'tg', common_name: 'tg.example.com', issuer_id: 'iss-local', target_ids: ['tgt-1'] })).body.id;
    const r1 = await t.api.put(`${base}/${id}/targets`, { target_ids: ['tgt-2', 'tgt-1'] });
    expect(r1.status).toBe(200);
    expect(r1.body.data.map((x: any) => x.id)).toEqual(['tgt-2', 'tgt-1']); // by name: haproxy, nginx
    const r2 = await t.api.put(`${base}/${id}/targets`, { target_ids: ['tgt-2'] });
    expect(r2.body.data.map((x: any) => x.id)).toEqual(['tgt-2']);
    const list = await t.api.get(`${base}/${id}/targets`);
    expect(list.body).toMatchObject({ total: 1, data: [{ id: 'tgt-2', name: 'haproxy web-2', type: 'haproxy', agent_id: 'agent-2' }] });
    expect(list.body.data[0].config).toBeUndefined();
    const before = await writeCounts(knex);
    expect((await t.api.put(`${base}/${id}/targets`, { target_ids: ['tgt-1', 'tgt-nope'] })).status).toBe(422);
    expect((await t.api.put(`${base}/${id}/targets`, { target_ids: ['tgt-1', 'tgt-1'] })).status).toBe(400);
    expect((await t.api.put(`${base}/${id}/targets`, {})).status).toBe(400);
    expect(await writeCounts(knex)).toEqual(before);
    expect(await auditActions(knex, id)).toEqual(['certificate_created', 'certificate_targets_updated', 'certificate_targets_updated']);
  });

  it('renews: a Renewal job and RenewalInProgress, 409 while one is open', async () => {
    const knex = t.kernel.db.knex;
    const id = await insertIssuedCertificate(knex, { agent_id: 'agent-1', status: 'Expiring' });
    const res = await t.api.post(`${base}/${id}/renew`);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ type: 'Renewal', status: 'AwaitingCSR', certificate_id: id, agent_id: 'agent-1' });
    expect((await t.api.get(`${base}/${id}`)).body.status).toBe('RenewalInProgress');
    const again = await t.api.post(`${base}/${id}/renew`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('invalid_state');
    expect(again.body.error.message).toContain(res.body.id);
    expect(await auditActions(knex, id)).toEqual(['certificate_renewal_requested']);

    // An open Issuance job blocks a renewal too.
    const pending = (await t.api.post(base, { name: 'p', common_name: 'p.example.com', issuer_id: 'iss-local' })).body.id;
    expect((await t.api.post(`${base}/${pending}/renew`)).status).toBe(409);

    const revoked = await insertIssuedCertificate(knex, { status: 'Revoked', revoked_at: new Date() });
    expect((await t.api.post(`${base}/${revoked}/renew`)).status).toBe(409);
    expect((await t.api.post(`${base}/mc-nope/renew`)).status).toBe(404);
  });

  it('passes a renewal of a certificate its client renews on to the client: no job, status kept, audited, seen by ARI', async () => {
    const knex = t.kernel.db.knex;
    const { enrolledStatus } = await import('../../kernel/src/protocols/enrolled-status.js');
    await knex('renewal_policies').insert({ id: 'rp-client-renewed', name: 'Renewed by the client', auto_renew: false }).onConflict('id').ignore();
    const id = await insertIssuedCertificate(knex, { status: 'Expiring', renewal_policy_id: 'rp-client-renewed', tags: JSON.stringify({ protocol: 'acme-fixture' }) });
    const serialNumber = ((await knex('managed_certificates').where({ id }).first('serial_number')) as { serial_number: string }).serial_number;
    const ari = () => enrolledStatus(t.kernel as never, 'acme-fixture', { certificateId: id, serialNumber });
    expect(await ari()).toMatchObject({ renewNow: false, revoked: false });

    const before = await writeCounts(knex);
    const res = await t.api.post(`${base}/${id}/renew`);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ certificate_id: id, renewed_by: 'client', requested_at: expect.any(String), message: expect.stringContaining('ARI') });
    expect(await jobsOf(t, id)).toEqual([]);
    expect((await t.api.get(`${base}/${id}`)).body.status).toBe('Expiring');
    expect(await writeCounts(knex)).toEqual({ ...before, lifecycle_audit: before.lifecycle_audit + 1 });
    const [event] = (await knex('audit_events').where({ resource_id: id, category: 'lifecycle' }).select('action', 'actor', 'details')) as { action: string; actor: string; details: unknown }[];
    expect(event.action).toBe('certificate_renewal_requested');
    expect(typeof event.details === 'string' ? JSON.parse(event.details) : event.details).toEqual({ renewed_by: 'client', status: 'Expiring', trigger: 'manual' });
    expect(await ari()).toMatchObject({ renewNow: true, revoked: false });

    // Asking again records it again (no job is open to refuse it); bulk renew takes the same path.
    expect((await t.api.post(`${base}/${id}/renew`)).status).toBe(202);
    const bulk = await t.api.post(`${base}/bulk-renew`, { certificate_ids: [id] });
    expect(bulk.status).toBe(202);
    expect(bulk.body).toMatchObject({ matched_count: 1, affected_count: 1, jobs: [], client_renewed: [id], failed: [] });
    expect(await jobsOf(t, id)).toEqual([]);
    expect(await auditActions(knex, id)).toEqual(['certificate_renewal_requested', 'certificate_renewal_requested', 'certificate_renewal_requested']);

    // Revoked or archived: refused as for any certificate, nothing recorded.
    const revoked = await insertIssuedCertificate(knex, { status: 'Revoked', revoked_at: new Date(), renewal_policy_id: 'rp-client-renewed' });
    expect((await t.api.post(`${base}/${revoked}/renew`)).status).toBe(409);
    expect(await auditActions(knex, revoked)).toEqual([]);
  });

  it('retries issuance for a certificate that was never issued', async () => {
    const id = (await t.api.post(base, { name: 'retry', common_name: 'retry.example.com', issuer_id: 'iss-local' })).body.id;
    const [first] = await jobsOf(t, id);
    expect((await t.api.post(`/api/v1/jobs/${first.id}/cancel`)).status).toBe(200);
    const res = await t.api.post(`${base}/${id}/renew`);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ type: 'Issuance', status: 'Pending' });
    expect((await t.api.get(`${base}/${id}`)).body.status).toBe('Pending');
  });

  it('gates every write by permission', async () => {
    const viewer = t.api.withKey(await t.keyWithRole('viewer'));
    const id = await insertIssuedCertificate(t.kernel.db.knex);
    expect((await viewer.get(`${base}/${id}`)).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', base, { name: 'v', common_name: 'v.example.com', issuer_id: 'iss-local' }],
      ['PUT', `${base}/${id}`, { name: 'v' }],
      ['DELETE', `${base}/${id}`, undefined],
      ['POST', `${base}/${id}/archive`, undefined],
      ['POST', `${base}/${id}/renew`, undefined],
      ['PUT', `${base}/${id}/targets`, { target_ids: [] }],
    ] as const) {
      const res = await viewer.request(method, path, { body });
      expect({ path, method, status: res.status }).toEqual({ path, method, status: 403 });
    }
    expect((await t.api.get(base, { key: null })).status).toBe(401);
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('certificates API scope', () => {
  let t: TestKernel;
  let inScope: string;
  let byIssuer: string;
  let outOfScope: string;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    const knex = t.kernel.db.knex;
    await seedReferences(knex);
    inScope = await insertIssuedCertificate(knex, { profile_id: 'prof-std', issuer_id: 'iss-other' });
    byIssuer = await insertIssuedCertificate(knex, { profile_id: 'prof-web', issuer_id: 'iss-local' });
    outOfScope = await insertIssuedCertificate(knex, { profile_id: 'prof-web', issuer_id: 'iss-other' });
  });
  afterAll(async () => { await t?.stop(); });

  it('lists and reads only certificates under the granted profiles and issuers', async () => {
    const profileViewer = t.api.withKey(await t.keyWithRole('viewer', { scope_type: 'profile', scope_id: 'prof-std' }));
    const list = await profileViewer.get(base);
    expect(list.status).toBe(200);
    expect(list.body.data.map((c: any) => c.id)).toEqual([inScope]);
    expect(list.body.total).toBe(1);
    expect((await profileViewer.get(`${base}/${inScope}`)).status).toBe(200);
    // Out of scope looks exactly like missing.
    const hidden = await profileViewer.get(`${base}/${outOfScope}`);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toEqual({ error: { code: 'not_found', message: `Certificate ${outOfScope} not found` } });
    expect((await profileViewer.get(`${base}/${outOfScope}/versions`)).status).toBe(404);
    expect((await profileViewer.get(`${base}/${outOfScope}/targets`)).status).toBe(404);
    expect((await profileViewer.get(`${base}/${outOfScope}/jobs`)).status).toBe(404);

    const issuerViewer = t.api.withKey(await t.keyWithRole('viewer', { scope_type: 'issuer', scope_id: 'iss-local' }));
    expect((await issuerViewer.get(base)).body.data.map((c: any) => c.id)).toEqual([byIssuer]);
  });

  it('lets a scoped operator create and act only inside its scope', async () => {
    const op = t.api.withKey(await t.keyWithRole('operator', { scope_type: 'profile', scope_id: 'prof-std' }));
    const before = await writeCounts(t.kernel.db.knex);
    const outside = await op.post(base, { name: 'o', common_name: 'o.example.com', issuer_id: 'iss-local', profile_id: 'prof-web' });
    expect(outside.status).toBe(403);
    expect((await op.post(base, { name: 'o', common_name: 'o.example.com', issuer_id: 'iss-local' })).status).toBe(403);
    expect(await writeCounts(t.kernel.db.knex)).toEqual(before);
    const inside = await op.post(base, { name: 'i', common_name: 'i.example.com', issuer_id: 'iss-local', profile_id: 'prof-std' });
    expect(inside.status).toBe(201);
    // Moving it out of the granted scope is refused.
    expect((await op.put(`${base}/${inside.body.id}`, { profile_id: 'prof-web' })).status).toBe(403);
    expect((await op.put(`${base}/${inside.body.id}`, { name: 'renamed' })).status).toBe(200);
    expect((await op.post(`${base}/${outOfScope}/renew`)).status).toBe(404);
    expect((await op.post(`${base}/${outOfScope}/archive`)).status).toBe(404);
    expect((await op.put(`${base}/${outOfScope}`, { name: 'x' })).status).toBe(404);
    expect((await op.delete(`${base}/${outOfScope}`)).status).toBe(404);
    expect((await op.post(`${base}/${inScope}/renew`)).status).toBe(202);
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('certificates API (server key generation)', () => {
  let t: TestKernel;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_KEYGEN_MODE: 'server' } });
    await seedReferences(t.kernel.db.knex);
  });
  afterAll(async () => { await t?.stop(); });

  it('queues a Pending issuance job even when an agent is assigned', async () => {
    const res = await t.api.post(base, { name: 's', common_name: 's.example.com', issuer_id: 'iss-local', agent_id: 'agent-1' });
    expect(res.status).toBe(201);
    const [job] = await jobsOf(t, res.body.id);
    expect(job).toMatchObject({ type: 'Issuance', status: 'Pending', agent_id: null });
    expect(job.payload.keygen).toBe('server');
    const approval = await t.api.post(base, { name: 'sa', common_name: 'sa.example.com', issuer_id: 'iss-local', profile_id: 'prof-approval' });
    expect((await jobsOf(t, approval.body.id))[0].status).toBe('AwaitingApproval');
  });
});
