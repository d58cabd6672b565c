import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions } from '../lifecycle/cert-fixtures.js';
import { breakSignature, Pki, sha256Fingerprint } from './agent-protocol.fixtures.js';

const TOKEN = 'agent-bootstrap-token-for-tests-0123';
const SECRET = 'target-password-s3cret-9f2c';

const count = async (t: TestKernel, table: string, where: Record<string, unknown> = {}) =>
  Number(((await t.kernel.db.knex(table).where(where).count({ n: '*' }).first()) as { n: number | string }).n);
const jobRow = async (t: TestKernel, id: string) => (await t.kernel.db.knex('jobs').where({ id }).first()) as JobRow;
const actions = (t: TestKernel, resourceId: string) => auditActions(t.kernel.db.knex, resourceId);

describe.skipIf(POSTGRES_UNAVAILABLE)('agent protocol (control plane side)', () => {
  let t: TestKernel;
  let pki: Pki;
  let a: { id: string; key: string; api: ApiClient };
  let b: { id: string; key: string; api: ApiClient };
  let seq = 0;

  const register = async (name: string, extra: Record<string, unknown> = {}) => {
    const res = await t.api.post('/api/v1/agents/register', { name, ...extra }, { key: TOKEN });
    expect(res.status, res.text).toBe(201);
    return { id: res.body.agent.id as string, key: res.body.api_key.key as string, api: t.api.withKey(res.body.api_key.key) };
  };

  /** A certificate routed to `agentId`, with an Issuance job waiting for its CSR. */
  const awaitingCsr = async (agentId: string) => {
    const certId = `mc-agentproto-${++seq}`;
    await t.kernel.db.knex('managed_certificates').insert({ id: certId, name: certId, common_name: `${certId}.example.com`, sans: JSON.stringify([`${certId}.example.com`, `www.${certId}.example.com`]), agent_id: agentId });
    const [job] = await t.kernel.jobs.enqueue({ type: 'Issuance', status: 'AwaitingCSR', certificate_id: certId, agent_id: agentId, payload: { keygen: 'agent' } });
    return { certId, jobId: job.id };
  };

  /** What H2 leaves behind after issuing: a version, and a Pending Deployment job for the agent's target. */
  const deployment = async (agentId: string, opts: { targetAgent?: string; maxAttempts?: number } = {}) => {
    const n = ++seq;
    const certId = `mc-deploy-${n}`;
    const { leaf, ca } = pki.chain(`${certId}.example.com`);
    await t.kernel.db.knex('owners').insert({ id: `owner-${n}`, name: 'Owner', email: `owner-${n}@example.com` });
    await t.kernel.db.knex('managed_certificates').insert({ id: certId, name: certId, common_name: `${certId}.example.com`, status: 'Active', agent_id: agentId, owner_id: `owner-${n}` });
    const versionId = `cv-deploy-${n}`;
    await t.kernel.db.knex('certificate_versions').insert({
      id: versionId, certificate_id: certId, serial_number: `0${n}`, fingerprint_sha256: sha256Fingerprint(leaf),
      not_before: new Date(), not_after: new Date(Date.now() + 30 * 86_400_000), pem_chain: leaf + ca,
    });
    const targetId = `tgt-deploy-${n}`;
    await t.kernel.db.knex('targets').insert({
      id: targetId, name: `nginx ${n}`, type: 'nginx', agent_id: opts.targetAgent ?? agentId,
      config: JSON.stringify({ cert_path: `/etc/nginx/certs/${n}.pem`, verify: { host: '127.0.0.1', port: 8443 } }),
      encrypted_config: t.kernel.cipher.sealJson({ password: SECRET }),
    });
    const [job] = await t.kernel.jobs.enqueue({ type: 'Deployment', certificate_id: certId, target_id: targetId, agent_id: agentId, payload: { version_id: versionId }, max_attempts: opts.maxAttempts });
    return { certId, versionId, targetId, jobId: job.id, leaf, ca };
  };

  const poll = async (agent: { id: string; api: ApiClient }) => {
    const res = await agent.api.get(`/api/v1/agents/${agent.id}/work`);
    expect(res.status, res.text).toBe(200);
    return res.body as { data: any[]; poll_after_ms: number };
  };
  const deploysOf = (work: { data: any[] }, jobId?: string) => work.data.filter((w) => w.kind === 'deploy' && (!jobId || w.job_id === jobId));

  beforeAll(async () => {
    pki = new Pki();
    t = await startTestKernel({ env: { CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN, CERTCTL_SCHEDULER_ENABLED: 'false' } });
    a = await register('agent-a', { hostname: 'a.example.net', os: 'linux', architecture: 'amd64', version: '0.1.0' });
    b = await register('agent-b');
  });
  afterAll(async () => {
    await t?.stop();
    pki?.cleanup();
  });

  describe('registration', () => {
    it('creates the agent and its key with the bootstrap token, audited', async () => {
      const agent = (await t.api.get(`/api/v1/agents/${a.id}`)).body;
      expect(agent).toMatchObject({ name: 'agent-a', hostname: 'a.example.net', os: 'linux', architecture: 'amd64', version: '0.1.0' });
      expect(a.key).toMatch(/^cctl_/);
      const key = (await t.api.get(`/api/v1/auth/keys/${agent.api_key_id}`)).body;
      expect(key).toMatchObject({ actor_type: 'agent', revoked_at: null });
      expect(key.roles.map((r: { role_id: string }) => r.role_id)).toEqual(['role-agent']);
      expect((await a.api.post(`/api/v1/agents/${a.id}/heartbeat`, { version: '0.1.1' })).status).toBe(200);
      expect(await actions(t, a.id)).toContain('agent_registered');
    });

    it('takes a readable id, and refuses it a second time (409) without minting a key', async () => {
      const first = await t.api.post('/api/v1/agents/register', { id: 'edge-01', name: 'edge' }, { key: TOKEN });
      expect(first.status).toBe(201);
      expect(first.body.agent.id).toBe('edge-01');
      const keys = await count(t, 'api_keys');
      const again = await t.api.post('/api/v1/agents/register', { id: 'edge-01', name: 'edge' }, { key: TOKEN });
      expect(again.status).toBe(409);
      expect(await count(t, 'api_keys')).toBe(keys);
    });

    it('refuses a missing or wrong token, an API key and a bad body, writing nothing', async () => {
      const before = { agents: await count(t, 'agents'), keys: await count(t, 'api_keys') };
      const none = await t.api.post('/api/v1/agents/register', { name: 'x' }, { key: null });
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe('bootstrap_token_invalid');
      expect((await t.api.post('/api/v1/agents/register', { name: 'x' }, { key: `${TOKEN}x` })).status).toBe(401);
      // An admin API key is not the bootstrap token.
      expect((await t.api.post('/api/v1/agents/register', { name: 'x' })).status).toBe(401);
      expect((await t.api.post('/api/v1/agents/register', { name: 'x', role: 'admin' }, { key: TOKEN })).status).toBe(400);
      expect((await t.api.post('/api/v1/agents/register', { name: 'x', id: 'Bad Id' }, { key: TOKEN })).status).toBe(400);
      expect({ agents: await count(t, 'agents'), keys: await count(t, 'api_keys') }).toEqual(before);
    });

    it('is closed (404) when no agent bootstrap token is configured', async () => {
      const config = t.kernel.config as { agentBootstrapToken?: string };
      config.agentBootstrapToken = undefined;
      try {
        const res = await t.api.post('/api/v1/agents/register', { name: 'x' }, { key: TOKEN });
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('bootstrap_disabled');
      } finally {
        config.agentBootstrapToken = TOKEN;
      }
    });
  });

  describe('work routing and CSRs', () => {
    it('hands an AwaitingCSR job only to its agent, and counts a poll as a heartbeat', async () => {
      const { certId, jobId } = await awaitingCsr(a.id);
      await t.kernel.db.knex('agents').where({ id: a.id }).update({ status: 'Offline', last_heartbeat_at: null });
      const work = await poll(a);
      expect(work.poll_after_ms).toBeGreaterThan(0);
      expect(work.data).toContainEqual({
        kind: 'csr', job_id: jobId, job_type: 'Issuance', certificate_id: certId, common_name: `${certId}.example.com`,
        sans: [`${certId}.example.com`, `www.${certId}.example.com`], key_algorithm: 'ECDSA-P256',
      });
      const agent = await t.kernel.db.knex('agents').where({ id: a.id }).first();
      expect(agent.status).toBe('Online');
      expect(agent.last_heartbeat_at).not.toBeNull();
      expect((await poll(b)).data.map((w) => w.job_id)).not.toContain(jobId);
      // Another agent's key, or an operator's, on this agent's path: refused at once.
      expect((await b.api.get(`/api/v1/agents/${a.id}/work`)).status).toBe(403);
      expect((await t.api.get(`/api/v1/agents/${a.id}/work`)).status).toBe(403);
      expect((await b.api.get('/api/v1/agents/agent-nope/work')).status).toBe(403);
    });

    it('asks for the key type the certificate\'s profile allows first, on the full and the quick poll', async () => {
      const knex = t.kernel.db.knex;
      await knex('certificate_profiles').insert([
        { id: 'prof-agentproto-rsa', name: 'RSA 3072 only', allowed_key_algorithms: JSON.stringify([{ algorithm: 'RSA', min_size: 3072 }]) },
        { id: 'prof-agentproto-ed', name: 'Ed25519 first', allowed_key_algorithms: JSON.stringify([{ algorithm: 'Ed25519' }, { algorithm: 'ECDSA', min_size: 384 }]) },
      ]);
      await knex('issuers').insert({ id: 'iss-agentproto-local', name: 'Local CA', type: 'local-ca', config: JSON.stringify({}) });
      const rsa = await awaitingCsr(a.id);
      const edLocal = await awaitingCsr(a.id);
      const edOther = await awaitingCsr(a.id);
      await knex('managed_certificates').where({ id: rsa.certId }).update({ profile_id: 'prof-agentproto-rsa' });
      await knex('managed_certificates').whereIn('id', [edLocal.certId, edOther.certId]).update({ profile_id: 'prof-agentproto-ed' });
      await knex('managed_certificates').where({ id: edLocal.certId }).update({ issuer_id: 'iss-agentproto-local' });
      const keyTypes = (work: { data: { job_id: string; kind: string }[] }) =>
        [rsa, edLocal, edOther].map(({ jobId }) => (work.data.find((w) => w.job_id === jobId) as { key_algorithm?: string } | undefined)?.key_algorithm);
      // Offline: the poll takes the full path (status change, row lock); Online: the one-statement quick path.
      await knex('agents').where({ id: a.id }).update({ status: 'Offline' });
      expect(keyTypes(await poll(a))).toEqual(['RSA-3072', 'Ed25519', 'ECDSA-P384']);
      expect(keyTypes(await poll(a))).toEqual(['RSA-3072', 'Ed25519', 'ECDSA-P384']);
    });

    it('refuses a bad CSR (garbage, broken signature) with 400 and changes nothing', async () => {
      const { jobId } = await awaitingCsr(a.id);
      const before = { job: await jobRow(t, jobId), audit: await actions(t, jobId) };
      const good = pki.csr('bad-csr.example.com');
      for (const csr of ['not a csr', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', breakSignature(good)]) {
        const res = await a.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: jobId, csr_pem: csr });
        expect(res.status, res.text).toBe(400);
        expect(res.body.error.code).toBe('csr_invalid');
      }
      expect(await jobRow(t, jobId)).toEqual(before.job);
      expect(await actions(t, jobId)).toEqual(before.audit);
    });

    it('accepts a valid CSR once: Pending with the CSR in its payload; the same CSR again is fine, another one is 409', async () => {
      const { jobId, certId } = await awaitingCsr(a.id);
      const csr = pki.csr(`${certId}.example.com`);
      // The wrong agent: its own path but a job routed elsewhere, or this agent's path with its key.
      expect((await b.api.post(`/api/v1/agents/${b.id}/csr`, { job_id: jobId, csr_pem: csr })).status).toBe(404);
      expect((await b.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: jobId, csr_pem: csr })).status).toBe(403);
      expect((await jobRow(t, jobId)).status).toBe('AwaitingCSR');

      const res = await a.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: jobId, csr_pem: csr });
      expect(res.status, res.text).toBe(202);
      expect(res.body).toEqual({ job_id: jobId, status: 'Pending' });
      const job = await jobRow(t, jobId);
      expect(job.status).toBe('Pending');
      expect(job.payload).toMatchObject({ keygen: 'agent', csr_pem: csr });
      expect(await actions(t, jobId)).toEqual(['job_created', 'csr_submitted']);
      expect((await poll(a)).data.map((w) => w.job_id)).not.toContain(jobId);

      const again = await a.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: jobId, csr_pem: csr.replace(/\n/g, '\r\n') });
      expect(again.status).toBe(202);
      const other = await a.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: jobId, csr_pem: pki.csr(`${certId}.example.com`) });
      expect(other.status).toBe(409);
      expect((await jobRow(t, jobId)).payload).toMatchObject({ csr_pem: csr });
      expect(await actions(t, jobId)).toEqual(['job_created', 'csr_submitted']);
    });

    it('refuses a CSR for a job that does not wait for one (409) or is no CSR request (404)', async () => {
      const certId = `mc-agentproto-${++seq}`;
      await t.kernel.db.knex('managed_certificates').insert({ id: certId, name: certId, common_name: `${certId}.example.com`, agent_id: a.id });
      const [pending] = await t.kernel.jobs.enqueue({ type: 'Renewal', certificate_id: certId, agent_id: a.id });
      const csr = pki.csr(`${certId}.example.com`);
      const res = await a.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: pending.id, csr_pem: csr });
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('invalid_state');
      const { jobId: deployJob } = await deployment(a.id);
      expect((await a.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: deployJob, csr_pem: csr })).status).toBe(404);
      expect((await a.api.post(`/api/v1/agents/${a.id}/csr`, { job_id: 'job-missing', csr_pem: csr })).status).toBe(404);
      expect((await jobRow(t, pending.id)).payload).toEqual({});
      await t.kernel.jobs.cancel(deployJob, { actor: { actor: 'test', actor_type: 'system' } });
    });
  });

  describe('deployments', () => {
    it('leases a deployment once, with the chain, the decrypted target config and the key source', async () => {
      const d = await deployment(a.id);
      const work = await poll(a);
      const [item] = deploysOf(work, d.jobId);
      expect(item).toMatchObject({
        kind: 'deploy', job_id: d.jobId, certificate_id: d.certId, version_id: d.versionId, fingerprint_sha256: sha256Fingerprint(d.leaf),
        certificate_pem: d.leaf, chain_pem: [d.ca], key: { source: 'agent' }, attempt: 1,
        target: { id: d.targetId, name: expect.any(String), type: 'nginx', config: { cert_path: expect.any(String), verify: { host: '127.0.0.1', port: 8443 }, password: SECRET } },
      });
      expect(Date.parse(item.lease_expires_at)).toBeGreaterThan(Date.now());
      const job = await jobRow(t, d.jobId);
      expect(job).toMatchObject({ status: 'Running', lease_owner: `agent:${a.id}`, attempts: 1 });

      // Polling again does not hand it out a second time; nor does another agent get it.
      expect(deploysOf(await poll(a), d.jobId)).toEqual([]);
      expect(deploysOf(await poll(b))).toEqual([]);

      // The secret is in the owning agent's work item only, never in other responses.
      for (const path of [`/api/v1/jobs/${d.jobId}`, `/api/v1/jobs?agent_id=${a.id}`, `/api/v1/targets/${d.targetId}`, `/api/v1/jobs/${d.jobId}/verification`, '/api/v1/audit?per_page=500']) {
        const res = await t.api.get(path);
        expect(res.status, path).toBe(200);
        expect(res.text, path).not.toContain(SECRET);
      }
      const failed = await b.api.get(`/api/v1/agents/${a.id}/work`);
      expect(failed.text).not.toContain(SECRET);
      await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Completed', attempt: 1 });
    });

    it('an expired lease is reaped and the job handed out again; a result for the old lease is refused', async () => {
      const d = await deployment(a.id);
      expect(deploysOf(await poll(a), d.jobId)).toHaveLength(1);
      await t.kernel.db.knex('jobs').where({ id: d.jobId }).update({ lease_expires_at: new Date(Date.now() - 1000) });
      const reaped = await t.kernel.jobs.reap();
      expect(reaped.requeued).toBeGreaterThanOrEqual(1);
      const back = await jobRow(t, d.jobId);
      expect(back).toMatchObject({ status: 'Pending', lease_owner: null });
      expect(back.last_error).toContain(`agent:${a.id}`);
      // Late result while the job waits for its retry: the lease is gone.
      const late = await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Completed' });
      expect(late.status).toBe(409);
      expect(late.body.error.code).toBe('lease_lost');

      await t.kernel.db.knex('jobs').where({ id: d.jobId }).update({ scheduled_at: new Date(Date.now() - 1000) });
      const [again] = deploysOf(await poll(a), d.jobId);
      expect(again.attempt).toBe(2);
      const before = await jobRow(t, d.jobId);
      const stale = await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Completed', attempt: 1 });
      expect(stale.status).toBe(409);
      expect(await jobRow(t, d.jobId)).toEqual(before);

      const ok = await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Completed', attempt: 2, changed: false });
      expect(ok.status, ok.text).toBe(200);
      expect((await jobRow(t, d.jobId)).status).toBe('Completed');
    });

    it('Completed: job result, verification, last_deployment_at, audit and a DeploymentSuccess notification', async () => {
      const d = await deployment(a.id);
      deploysOf(await poll(a), d.jobId);
      const fp = sha256Fingerprint(d.leaf);
      // Only the agent holding the lease may answer.
      expect((await b.api.post(`/api/v1/agents/${b.id}/jobs/${d.jobId}/result`, { status: 'Completed' })).status).toBe(404);
      expect((await b.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Completed' })).status).toBe(403);
      const res = await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, {
        status: 'Completed', changed: true, attempt: 1,
        verification: { status: 'success', endpoint: '127.0.0.1:8443', expected_fingerprint_sha256: fp, observed_fingerprint_sha256: fp.toUpperCase() },
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({ job_id: d.jobId, status: 'Completed' });
      const job = await jobRow(t, d.jobId);
      expect(job).toMatchObject({ status: 'Completed', lease_owner: null, verification_status: 'success', verification_error: null });
      expect(job.verified_at).not.toBeNull();
      expect(job.result).toMatchObject({ changed: true, rolled_back: false, verification: { status: 'success', observed_fingerprint_sha256: fp } });
      const cert = await t.kernel.db.knex('managed_certificates').where({ id: d.certId }).first();
      expect(cert.last_deployment_at).not.toBeNull();
      expect(await actions(t, d.jobId)).toEqual(['job_created', 'deployment_completed']);
      const notes = await t.kernel.db.knex('notifications').where({ certificate_id: d.certId });
      expect(notes.map((n: { type: string }) => n.type)).toEqual(['DeploymentSuccess']);

      const view = await t.api.get(`/api/v1/jobs/${d.jobId}/verification`);
      expect(view.body).toMatchObject({ job_id: d.jobId, status: 'success', endpoint: '127.0.0.1:8443', expected_fingerprint_sha256: fp, observed_fingerprint_sha256: fp });
      // A second answer for a finished job changes nothing.
      expect((await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Failed', error: 'late' })).status).toBe(409);
      expect((await jobRow(t, d.jobId)).status).toBe('Completed');
    });

    it('Failed: retried with backoff, then Failed for good with a DeploymentFailure notification', async () => {
      const d = await deployment(a.id, { maxAttempts: 2 });
      deploysOf(await poll(a), d.jobId);
      const first = await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Failed', error: 'nginx -t failed', rolled_back: true });
      expect(first.status, first.text).toBe(200);
      expect(first.body.status).toBe('Pending');
      let job = await jobRow(t, d.jobId);
      expect(job).toMatchObject({ status: 'Pending', last_error: 'nginx -t failed', lease_owner: null });
      expect(new Date(job.scheduled_at).getTime()).toBeGreaterThan(Date.now());
      expect(deploysOf(await poll(a), d.jobId)).toEqual([]); // not before its backoff

      await t.kernel.db.knex('jobs').where({ id: d.jobId }).update({ scheduled_at: new Date(Date.now() - 1000) });
      expect(deploysOf(await poll(a), d.jobId)).toHaveLength(1);
      const second = await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Failed', error: 'reload failed', attempt: 2 });
      expect(second.body.status).toBe('Failed');
      job = await jobRow(t, d.jobId);
      expect(job).toMatchObject({ status: 'Failed', last_error: 'reload failed' });
      expect(await actions(t, d.jobId)).toEqual(['job_created', 'job_retry_scheduled', 'deployment_failed', 'job_failed', 'deployment_failed']);
      const notes = await t.kernel.db.knex('notifications').where({ certificate_id: d.certId });
      expect(notes.map((n: { type: string }) => n.type)).toEqual(['DeploymentFailure']);
      expect(notes[0].severity).toBe('critical');
    });

    it('hands a server-generated key (keygen mode server) to the deploying agent only', async () => {
      const d = await deployment(a.id);
      const keyPem = fs.readFileSync(pki.key(), 'utf8');
      await t.kernel.db.knex('certificate_keys').insert({ id: `ck-${d.versionId}`, certificate_id: d.certId, version_id: d.versionId, key_algorithm: 'EC', key_size: 256, encrypted_key: t.kernel.cipher.encrypt(keyPem) });
      const [item] = deploysOf(await poll(a), d.jobId);
      expect(item.key).toEqual({ source: 'server', private_key_pem: keyPem });
      const marker = keyPem.split('\n')[1];
      for (const path of [`/api/v1/jobs/${d.jobId}`, `/api/v1/certificates/${d.certId}`, '/api/v1/audit?per_page=500']) expect((await t.api.get(path)).text, path).not.toContain(marker);
      await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Completed' });
    });

    it('fails a deployment whose target moved to another agent instead of handing out its secrets', async () => {
      const d = await deployment(a.id, { targetAgent: b.id });
      const work = await poll(a);
      expect(deploysOf(work, d.jobId)).toEqual([]);
      expect(JSON.stringify(work)).not.toContain(SECRET);
      const job = await jobRow(t, d.jobId);
      expect(job.status).toBe('Failed');
      expect(job.last_error).toContain(`no longer served by agent ${a.id}`);
    });

    it('records a verification from the deploying agent only; the server checks the fingerprint itself', async () => {
      const d = await deployment(a.id);
      deploysOf(await poll(a), d.jobId);
      await a.api.post(`/api/v1/agents/${a.id}/jobs/${d.jobId}/result`, { status: 'Completed' });
      expect((await t.api.get(`/api/v1/jobs/${d.jobId}/verification`)).body.status).toBe('pending');

      expect((await b.api.post(`/api/v1/jobs/${d.jobId}/verify`, { status: 'success' })).status).toBe(404);
      expect((await a.api.post(`/api/v1/jobs/${d.jobId}/verify`, { status: 'maybe' })).status).toBe(400);
      const wrong = 'ab'.repeat(32);
      const res = await a.api.post(`/api/v1/jobs/${d.jobId}/verify`, { status: 'success', endpoint: 'web:443', observed_fingerprint_sha256: wrong });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ status: 'failed', observed_fingerprint_sha256: wrong, expected_fingerprint_sha256: sha256Fingerprint(d.leaf) });
      expect(res.body.error).toContain('different certificate');
      const job = await jobRow(t, d.jobId);
      expect(job).toMatchObject({ status: 'Completed', verification_status: 'failed' });
      expect(await actions(t, d.jobId)).toContain('deployment_verified');

      const viewer = t.api.withKey(await t.keyWithRole('viewer'));
      expect((await viewer.get(`/api/v1/jobs/${d.jobId}/verification`)).body.status).toBe('failed');
      expect((await viewer.post(`/api/v1/jobs/${d.jobId}/verify`, { status: 'success' })).status).toBe(403);
      const pending = await awaitingCsr(a.id);
      expect((await t.api.get(`/api/v1/jobs/${pending.jobId}/verification`)).status).toBe(404);
    });
  });
});
