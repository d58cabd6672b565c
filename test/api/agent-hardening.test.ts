import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions, days, insertIssuedCertificate, seedReferences } from '../lifecycle/cert-fixtures.js';
import { Pki, sha256Fingerprint } from './agent-protocol.fixtures.js';

/**
 * Control-plane halves of the agent hardening: deployments leased two at a time, an
 * agent's abandoned deployment alerted on when the reaper fails it, target mappings
 * only for global target.manage, and an agent's delete cancelling its CSR waits.
 */
const TOKEN = 'agent-bootstrap-token-hardening-0123';
const jobRow = async (t: TestKernel, id: string) => (await t.kernel.db.knex('jobs').where({ id }).first()) as JobRow;
const actions = (t: TestKernel, resourceId: string) => auditActions(t.kernel.db.knex, resourceId);

describe.skipIf(POSTGRES_UNAVAILABLE)('agent hardening (control plane)', () => {
  let t: TestKernel;
  let pki: Pki;
  let seq = 0;

  const register = async (name: string) => {
    const res = await t.api.post('/api/v1/agents/register', { name }, { key: TOKEN });
    expect(res.status, res.text).toBe(201);
    return { id: res.body.agent.id as string, api: t.api.withKey(res.body.api_key.key) as ApiClient };
  };
  const poll = async (agent: { id: string; api: ApiClient }) => {
    const res = await agent.api.get(`/api/v1/agents/${agent.id}/work`);
    expect(res.status, res.text).toBe(200);
    return res.body as { data: { kind: string; job_id: string }[]; poll_after_ms: number };
  };
  /** An issued version and a Pending Deployment job for a target of `agentId`. */
  const deployment = async (agentId: string, opts: { maxAttempts?: number } = {}) => {
    const n = ++seq;
    const certId = `mc-harden-${n}`;
    const { leaf, ca } = pki.chain(`${certId}.example.com`);
    await t.kernel.db.knex('managed_certificates').insert({ id: certId, name: certId, common_name: `${certId}.example.com`, status: 'Active', agent_id: agentId, owner_id: 'owner-a' });
    await t.kernel.db.knex('certificate_versions').insert({
      id: `cv-harden-${n}`, certificate_id: certId, serial_number: `0${n}`, fingerprint_sha256: sha256Fingerprint(leaf),
      not_before: new Date(), not_after: new Date(Date.now() + 30 * 86_400_000), pem_chain: leaf + ca,
    });
    await t.kernel.db.knex('targets').insert({ id: `tgt-harden-${n}`, name: `nginx harden ${n}`, type: 'nginx', agent_id: agentId, config: JSON.stringify({ cert_path: `/etc/nginx/certs/${n}.pem` }) });
    const [job] = await t.kernel.jobs.enqueue({ type: 'Deployment', certificate_id: certId, target_id: `tgt-harden-${n}`, agent_id: agentId, payload: { version_id: `cv-harden-${n}` }, max_attempts: opts.maxAttempts });
    return { certId, jobId: job.id };
  };

  beforeAll(async () => {
    pki = new Pki();
    t = await startTestKernel({ env: { CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN, CERTCTL_SCHEDULER_ENABLED: 'false' } });
    await seedReferences(t.kernel.db.knex);
  });
  afterAll(async () => {
    await t?.stop();
    pki?.cleanup();
  });

  it('leases at most two deployments per poll, and says at once when more are waiting', async () => {
    const agent = await register('batch-agent');
    const jobs = [await deployment(agent.id), await deployment(agent.id), await deployment(agent.id)];
    const first = await poll(agent);
    expect(first.data.filter((w) => w.kind === 'deploy')).toHaveLength(2);
    expect(first.poll_after_ms).toBe(0);
    const second = await poll(agent);
    expect(second.data.filter((w) => w.kind === 'deploy').map((w) => w.job_id)).toHaveLength(1);
    expect(second.poll_after_ms).toBeGreaterThan(0);
    const leased = [...first.data, ...second.data].map((w) => w.job_id).sort();
    expect(leased).toEqual(jobs.map((j) => j.jobId).sort());
  });

  it('the reaper fails an agent\'s unanswered deployment for good and records a DeploymentFailure, once', async () => {
    const agent = await register('silent-agent');
    const d = await deployment(agent.id, { maxAttempts: 1 });
    expect((await poll(agent)).data.map((w) => w.job_id)).toContain(d.jobId);
    await t.kernel.db.knex('jobs').where({ id: d.jobId }).update({ lease_expires_at: new Date(Date.now() - 1000) });
    const reaped = await t.kernel.jobs.reap();
    expect(reaped.failed).toBeGreaterThanOrEqual(1);
    expect(await jobRow(t, d.jobId)).toMatchObject({ status: 'Failed', last_error: `lease held by agent:${agent.id} expired` });
    const notes = await t.kernel.db.knex('notifications').where({ certificate_id: d.certId, type: 'DeploymentFailure' });
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ severity: 'critical', event_key: `deployment-failure:${d.jobId}`, recipient: 'alice@example.com' });
    expect(notes[0].message).toMatch(new RegExp(`agent ${agent.id} leased the job and did not report`));
    // A requeued (not final) expiry alerts nobody.
    const retry = await deployment(agent.id, { maxAttempts: 3 });
    await poll(agent);
    await t.kernel.db.knex('jobs').where({ id: retry.jobId }).update({ lease_expires_at: new Date(Date.now() - 1000) });
    await t.kernel.jobs.reap();
    expect((await jobRow(t, retry.jobId)).status).toBe('Pending');
    expect(await t.kernel.db.knex('notifications').where({ certificate_id: retry.certId })).toHaveLength(0);
  });

  describe('certificate target mappings need global target.manage', () => {
    let scoped: string;
    let certId: string;
    beforeAll(async () => {
      const key = await t.api.post('/api/v1/auth/keys', { name: 'std-operator', roles: [{ role_id: 'role-operator', scope_type: 'profile', scope_id: 'prof-std' }] });
      expect(key.status, key.text).toBe(201);
      scoped = key.body.key;
      certId = await insertIssuedCertificate(t.kernel.db.knex, { profile_id: 'prof-std', issuer_id: 'iss-local', expires_at: days(200) });
    });

    it('refuses a profile-scoped operator mapping its certificate to another team\'s target (403), changing nothing', async () => {
      // The scoped operator may edit the certificate itself...
      expect((await t.api.put(`/api/v1/certificates/${certId}`, { name: 'renamed by scoped operator' }, { key: scoped })).status).toBe(200);
      // ...but not point it at a target.
      const put = await t.api.put(`/api/v1/certificates/${certId}/targets`, { target_ids: ['tgt-2'] }, { key: scoped });
      expect(put.status).toBe(403);
      expect(put.body.error.code).toBe('target_mapping_forbidden');
      expect(await t.kernel.db.knex('certificate_target_mappings').where({ certificate_id: certId })).toHaveLength(0);
      const created = await t.api.post('/api/v1/certificates', { name: 'sneaky', common_name: 'sneaky.example.com', issuer_id: 'iss-local', profile_id: 'prof-std', target_ids: ['tgt-2'] }, { key: scoped });
      expect(created.status).toBe(403);
      expect(created.body.error.code).toBe('target_mapping_forbidden');
      expect(await t.kernel.db.knex('managed_certificates').where({ common_name: 'sneaky.example.com' })).toHaveLength(0);
      // Without target_ids the same create is allowed.
      const plain = await t.api.post('/api/v1/certificates', { name: 'plain', common_name: 'plain.example.com', issuer_id: 'iss-local', profile_id: 'prof-std' }, { key: scoped });
      expect(plain.status, plain.text).toBe(201);
    });

    it('lets a global target.manage holder map and unmap; setting the same set again is no change for anyone', async () => {
      const put = await t.api.put(`/api/v1/certificates/${certId}/targets`, { target_ids: ['tgt-1'] });
      expect(put.status, put.text).toBe(200);
      expect(put.body.data.map((r: { id: string }) => r.id)).toEqual(['tgt-1']);
      expect((await t.api.put(`/api/v1/certificates/${certId}/targets`, { target_ids: ['tgt-1'] }, { key: scoped })).status).toBe(200);
      const clear = await t.api.put(`/api/v1/certificates/${certId}/targets`, { target_ids: [] }, { key: scoped });
      expect(clear.status).toBe(403);
      expect(await t.kernel.db.knex('certificate_target_mappings').where({ certificate_id: certId })).toHaveLength(1);
    });
  });

  it('deleting an agent cancels the issuing jobs waiting for its CSR, audited, and settles a renewing certificate', async () => {
    const agent = await register('doomed-agent');
    const knex = t.kernel.db.knex;
    const fresh = `mc-harden-new-${++seq}`;
    await knex('managed_certificates').insert({ id: fresh, name: fresh, common_name: `${fresh}.example.com`, agent_id: agent.id });
    const [issuance] = await t.kernel.jobs.enqueue({ type: 'Issuance', status: 'AwaitingCSR', certificate_id: fresh, agent_id: agent.id, payload: { keygen: 'agent' } });
    const renewing = await insertIssuedCertificate(knex, { agent_id: agent.id, status: 'RenewalInProgress', expires_at: days(200), issuer_id: 'iss-local' });
    const [renewal] = await t.kernel.jobs.enqueue({ type: 'Renewal', status: 'AwaitingCSR', certificate_id: renewing, agent_id: agent.id, payload: { keygen: 'agent' } });
    const other = await register('bystander-agent');
    const [untouched] = await t.kernel.jobs.enqueue({ type: 'Issuance', status: 'AwaitingCSR', certificate_id: fresh, agent_id: other.id, payload: { keygen: 'agent' } });

    const del = await t.api.delete(`/api/v1/agents/${agent.id}`);
    expect(del.status, del.text).toBeLessThan(300);
    for (const id of [issuance.id, renewal.id]) {
      expect(await jobRow(t, id)).toMatchObject({ status: 'Cancelled', last_error: `agent ${agent.id} was deleted before it sent the CSR` });
      expect(await actions(t, id)).toContain('job_cancelled');
    }
    expect((await jobRow(t, untouched.id)).status).toBe('AwaitingCSR');
    expect((await knex('managed_certificates').where({ id: renewing }).first()).status).toBe('Active');
    expect(await actions(t, renewing)).toContain('certificate_status_changed');
    // Nothing waits any more: the certificate can be renewed again (no 409 for an open job).
    const renew = await t.api.post(`/api/v1/certificates/${renewing}/renew`, {});
    expect(renew.status, renew.text).not.toBe(409);
  });
});
