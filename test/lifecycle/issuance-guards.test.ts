import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../../kernel/src/audit/audit-log.js';
import { IssuanceStoreQueue } from '../../kernel/src/lifecycle/issuance-batch.js';
import { IssuanceError } from '../../kernel/src/lifecycle/issuance-failure.js';
import { makeTestPki, type TestPki } from '../plugins/runtime/test-pki.js';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { waitFor } from '../support/wait.js';
import { auditActions } from './cert-fixtures.js';
import { certRow, createCertificate, issuanceEnv, issuedRecord, issuerCalls, runJob, seedIssuance, submitCsr, versionsOf } from './issuance-support.js';

const TOKEN = 'issuance-guards-bootstrap-token-0123';

/**
 * What the issuance store refuses or cleans up: a certificate revoked or archived
 * while its issuer worked is not brought back to Active; a certificate that grants
 * more than the plan (CA:TRUE, other names, other EKUs) is not stored; and a new
 * version supersedes the older deployments of the same certificate to a target.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('issuance guards', () => {
  let t: TestKernel;
  let knex: Knex;
  let pki: TestPki;
  let seq = 0;

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv({ CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN }) });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
    await knex('certificate_profiles').insert({ id: 'prof-server-only', name: 'serverAuth only', allowed_ekus: JSON.stringify(['serverAuth']) });
    await knex('issuers').insert(['slow', 'ca-true', 'extra-san', 'extra-eku', 'extra-client-auth'].map((b) => ({ id: `iss-${b}`, name: `Test CA (${b})`, type: 'test-ca-issuer', config: JSON.stringify({ behaviour: b }) })));
    pki = makeTestPki();
  });
  afterAll(async () => {
    pki?.cleanup();
    await t?.stop();
  });

  const csrFor = (cn: string, sans?: string) => pki.csr(`g${++seq}`, { subject: `/CN=${cn}`, sans });
  const deploymentsOf = (id: string) => knex('jobs').where({ certificate_id: id, type: 'Deployment' }).orderBy('created_at') as Promise<Record<string, any>[]>;

  /** A certificate issued once (v1, with a Pending deployment per target) through the job flow. */
  async function issued(body: Record<string, unknown>): Promise<{ id: string; versionId: string }> {
    const { id, job } = await createCertificate(t, { agent_id: 'agent-1', target_ids: ['tgt-1'], ...body });
    const cert = await certRow(knex, id);
    await submitCsr(knex, job.id, csrFor(cert.common_name));
    expect(await runJob(t, job.id)).toMatchObject({ status: 'Completed' });
    const [v1] = await versionsOf(knex, id);
    return { id, versionId: v1.id };
  }

  /** A renewal of the certificate with its CSR in, ready to run. */
  async function renewal(id: string): Promise<string> {
    const res = await t.api.post(`/api/v1/certificates/${id}/renew`);
    expect(res.status, res.text).toBe(202);
    await submitCsr(knex, res.body.id, csrFor((await certRow(knex, id)).common_name));
    return res.body.id as string;
  }

  describe('a certificate closed while its issuer works', () => {
    it('revoked between the issuer call and the store: stays Revoked, no version, no deployment, the job fails for good', async () => {
      const { id, versionId } = await issued({});
      await knex('managed_certificates').where({ id }).update({ issuer_id: 'iss-slow' });
      const jobId = await renewal(id);
      const running = runJob(t, jobId);
      // The slow issuer holds the certificate until released: revoke it meanwhile, as the revocation service does.
      await waitFor('the slow issuer\'s call', async () => (await issuerCalls(knex, id)).length >= 2, 10_000, 20);
      expect(await issuerCalls(knex, id)).toHaveLength(2);
      await knex('managed_certificates').where({ id }).update({ status: 'Revoked', revoked_at: new Date(), revocation_reason: 'keyCompromise', updated_at: new Date() });
      await knex('plugin_kv').insert({ plugin_id: 'test-ca-issuer', key: `release:${id}`, value: 'true' });

      const done = await running;
      expect(done).toMatchObject({ status: 'Failed', attempts: 1 });
      expect(done.last_error).toMatch(new RegExp(`certificate ${id} was revoked while it was being renewed; the issued certificate \\(serial [0-9a-f]+\\) is not stored or deployed`));
      const cert = await certRow(knex, id);
      expect(cert.status).toBe('Revoked');
      expect((await versionsOf(knex, id)).map((v) => v.id)).toEqual([versionId]);
      expect((await deploymentsOf(id)).map((d) => d.payload.version_id)).toEqual([versionId]);
      expect(await auditActions(knex, id)).not.toContain('certificate_renewed');
      expect(await knex('notifications').where({ certificate_id: id, type: 'RenewalSuccess' })).toHaveLength(1);
    });

    it('in a batch, records of revoked or archived certificates fail alone and their neighbours are stored', async () => {
      const ids = Array.from({ length: 4 }, (_, i) => `mc-guard-${process.pid}-${i}`);
      await knex('managed_certificates').insert(ids.map((id, i) => ({
        id, name: id, common_name: 'guard.example.com', issuer_id: 'iss-issue', status: i === 1 ? 'Archived' : i === 2 ? 'Revoked' : 'Pending',
      })));
      await knex('certificate_target_mappings').insert(ids.map((id) => ({ certificate_id: id, target_id: 'tgt-1' })));
      const queue = new IssuanceStoreQueue(t.kernel);
      // The first store starts at once; the other three are written as one batch.
      const out = await Promise.allSettled(ids.map((id) => queue.store(issuedRecord(id, 'guard.example.com'), SYSTEM_ACTOR)));
      expect(out.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
      for (const [i, word] of [[1, 'archived'], [2, 'revoked']] as const) {
        const err = (out[i] as PromiseRejectedResult).reason as IssuanceError;
        expect(err).toBeInstanceOf(IssuanceError);
        expect(err.retryable).toBe(false);
        expect(err.message).toContain(`certificate ${ids[i]} was ${word} while it was being issued`);
      }
      const statuses = await knex('managed_certificates').whereIn('id', ids).orderBy('id').pluck('status');
      expect(statuses).toEqual(['Active', 'Archived', 'Revoked', 'Active']);
      for (const [i, id] of ids.entries()) {
        const stored = i === 0 || i === 3 ? 1 : 0;
        expect(await versionsOf(knex, id)).toHaveLength(stored);
        expect(await deploymentsOf(id)).toHaveLength(stored);
        expect((await auditActions(knex, id)).filter((a) => a === 'certificate_issued')).toHaveLength(stored);
      }
    });
  });

  describe('a certificate that grants more than the plan', () => {
    it.each([
      ['iss-ca-true', /it is a CA certificate \(basicConstraints CA:TRUE\)/],
      ['iss-extra-san', /it names evil\.example\.net, which the request did not/],
      ['iss-extra-eku', /it allows codeSigning, beyond serverAuth, clientAuth/],
    ])('%s: refused at once, nothing stored, no deployment', async (issuer, message) => {
      const { id, job } = await createCertificate(t, { common_name: `${issuer}.example.com`, sans: [`www.${issuer}.example.com`], agent_id: 'agent-1', issuer_id: issuer, target_ids: ['tgt-1'], profile_id: 'prof-ec' });
      await submitCsr(knex, job.id, csrFor(`${issuer}.example.com`, `DNS:${issuer}.example.com,DNS:www.${issuer}.example.com`));
      const done = await runJob(t, job.id);
      expect(done, done.last_error).toMatchObject({ status: 'Failed', attempts: 1 });
      expect(done.last_error).toMatch(`issuer ${issuer} returned a certificate that does not keep to the request`);
      expect(done.last_error).toMatch(message);
      expect(await versionsOf(knex, id)).toHaveLength(0);
      expect(await deploymentsOf(id)).toHaveLength(0);
      expect((await certRow(knex, id)).status).toBe('Failed');
    });
    it('a CA adding clientAuth to a serverAuth certificate: accepted by default (as public ACME CAs do), refused when the profile lists serverAuth only', async () => {
      const tolerated = await createCertificate(t, { common_name: 'client-ok.example.com', agent_id: 'agent-1', issuer_id: 'iss-extra-client-auth' });
      await submitCsr(knex, tolerated.job.id, csrFor('client-ok.example.com'));
      const ok = await runJob(t, tolerated.job.id);
      expect(ok.status, ok.last_error).toBe('Completed');
      const [version] = await versionsOf(knex, tolerated.id);
      expect(new crypto.X509Certificate(version.pem_chain).keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);

      const strict = await createCertificate(t, { common_name: 'client-no.example.com', agent_id: 'agent-1', issuer_id: 'iss-extra-client-auth', profile_id: 'prof-server-only' });
      await submitCsr(knex, strict.job.id, csrFor('client-no.example.com'));
      const done = await runJob(t, strict.job.id);
      expect(done, done.last_error).toMatchObject({ status: 'Failed', attempts: 1 });
      expect(done.last_error).toMatch('it allows clientAuth, beyond serverAuth');
      expect(await versionsOf(knex, strict.id)).toHaveLength(0);
    });
  });

  describe('older deployments are superseded by a new version', () => {
    let agent: { id: string; api: ApiClient };
    let target: string;

    beforeAll(async () => {
      const res = await t.api.post('/api/v1/agents/register', { name: 'guard-agent' }, { key: TOKEN });
      expect(res.status, res.text).toBe(201);
      agent = { id: res.body.agent.id, api: t.api.withKey(res.body.api_key.key) };
      target = 'tgt-guard';
      await knex('targets').insert({ id: target, name: 'nginx guard', type: 'nginx', agent_id: agent.id, config: JSON.stringify({ cert_path: '/etc/nginx/certs/guard.pem' }) });
    });

    const poll = async () => {
      const res = await agent.api.get(`/api/v1/agents/${agent.id}/work`);
      expect(res.status, res.text).toBe(200);
      return (res.body.data as any[]).filter((w) => w.kind === 'deploy');
    };
    const fail = async (jobId: string) => {
      const res = await agent.api.post(`/api/v1/agents/${agent.id}/jobs/${jobId}/result`, { status: 'Failed', error: 'reload failed' });
      expect(res.status, res.text).toBe(200);
      expect(res.body.status).toBe('Pending');
      await knex('jobs').where({ id: jobId }).update({ scheduled_at: new Date(Date.now() - 1000) });
    };
    const expectSuperseded = async (jobId: string, by: string, oldVersion: string) => {
      expect(await knex('jobs').where({ id: jobId }).first()).toMatchObject({ status: 'Cancelled', last_error: `superseded by version ${by}` });
      const ev = await knex('audit_events').where({ resource_id: jobId, action: 'job_cancelled' }).first();
      expect(ev.details).toMatchObject({ type: 'Deployment', reason: 'superseded', version_id: oldVersion, superseded_by_version: by });
    };

    it('a Pending (retry scheduled) deployment of v1 is cancelled when v2 is stored; only v2 is handed out', async () => {
      const { id, versionId: v1 } = await issued({ agent_id: agent.id, target_ids: [target] });
      const [d1] = await deploymentsOf(id);
      expect((await poll()).map((w) => [w.job_id, w.version_id])).toEqual([[d1.id, v1]]);
      await fail(d1.id);

      expect(await runJob(t, await renewal(id))).toMatchObject({ status: 'Completed' });
      const v2 = (await versionsOf(knex, id))[1].id;
      const d2 = (await deploymentsOf(id)).find((d) => d.payload.version_id === v2)!;
      await expectSuperseded(d1.id, v2, v1);
      const renewed = await knex('audit_events').where({ resource_id: id, action: 'certificate_renewed' }).first();
      expect(renewed.details.deployment_job_ids).toEqual([d2.id]);

      expect((await poll()).map((w) => [w.job_id, w.version_id])).toEqual([[d2.id, v2]]);
      expect(await poll()).toEqual([]);
    });

    it('a Running deployment of v1 finishes (its result is accepted); a retry of it is cancelled at the next poll, not handed out', async () => {
      const { id, versionId: v1 } = await issued({ agent_id: agent.id, target_ids: [target] });
      const [d1] = await deploymentsOf(id);
      expect((await poll()).map((w) => w.job_id)).toEqual([d1.id]);

      expect(await runJob(t, await renewal(id))).toMatchObject({ status: 'Completed' });
      const v2 = (await versionsOf(knex, id))[1].id;
      const d2 = (await deploymentsOf(id)).find((d) => d.payload.version_id === v2)!;
      expect((await knex('jobs').where({ id: d1.id }).first()).status).toBe('Running');

      await fail(d1.id); // accepted: back to Pending for a retry
      const items = await poll();
      expect(items.map((w) => [w.job_id, w.version_id])).toEqual([[d2.id, v2]]);
      await expectSuperseded(d1.id, v2, v1);
      expect(await poll()).toEqual([]);
    });
  });
});
