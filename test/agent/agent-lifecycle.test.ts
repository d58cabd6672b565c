import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import { TEST_ISSUER_DIR } from '../lifecycle/issuance-support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { waitFor } from '../support/wait.js';
import { AGENT_PLUGINS_DIR, FileBackedTlsServer, RecordingProxy, selfSigned, sha256Hex, spawnAgent, tempDir, type AgentProcess } from './agent-support.js';

const TOKEN = 'agent-bootstrap-token-lifecycle-0001';
const TARGET_SECRET = 'target-api-token-never-logged-7d1e';

/**
 * The real thing end to end: a kernel, the `certctl agent` process (built CLI),
 * and the agent-file-target fixture plugin. The agent talks to the kernel through a
 * recording proxy whose certificate it pins, so the test can read every request.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('certctl agent against a real kernel', () => {
  let t: TestKernel;
  let proxy: RecordingProxy;
  let agent: AgentProcess;
  let agentId: string;
  let dir: string;
  let keyDir: string;
  let stateDir: string;
  let site: string;
  let goodEndpoint: FileBackedTlsServer;
  let wrongEndpoint: FileBackedTlsServer;
  let placeholder: { cert: string; key: string };
  let discovered: string;
  let webCertId: string;

  const knex = () => t.kernel.db.knex;
  const job = async (id: string) => (await knex()('jobs').where({ id }).first()) as JobRow;

  beforeAll(async () => {
    dir = tempDir('certctl-agent-e2e-');
    keyDir = path.join(dir, 'keys');
    stateDir = path.join(dir, 'state');
    site = path.join(dir, 'site');
    fs.mkdirSync(site);
    fs.mkdirSync(path.join(dir, 'discover', 'sub'), { recursive: true });
    placeholder = selfSigned(dir, 'placeholder', 'web.example.com');
    const existing = selfSigned(dir, 'existing', 'legacy.example.com');
    discovered = existing.cert;
    fs.writeFileSync(path.join(dir, 'discover', 'sub', 'legacy.pem'), `${existing.key}${existing.cert}`);

    t = await startTestKernel({ env: {
      CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN,
      CERTCTL_PLUGIN_DIRS: `${TEST_ISSUER_DIR},${AGENT_PLUGINS_DIR}`,
      CERTCTL_JOB_PROCESSOR_INTERVAL: '300ms',
      CERTCTL_JOB_MAX_ATTEMPTS: '1',
    } });
    await knex()('issuers').insert({ id: 'iss-agent-e2e', name: 'Test CA', type: 'test-ca-issuer', config: JSON.stringify({ behaviour: 'issue' }) });
    const proxyId = selfSigned(dir, 'proxy', 'proxy.invalid');
    proxy = new RecordingProxy(t.kernel.url, fs.readFileSync(path.join(t.dataDir, 'tls', 'server.crt'), 'utf8'), proxyId);
    await proxy.start();
    goodEndpoint = new FileBackedTlsServer({ certPath: path.join(site, 'web.crt'), keyPath: path.join(site, 'web.key') }, placeholder);
    await goodEndpoint.start();
    wrongEndpoint = new FileBackedTlsServer(null, placeholder);
    await wrongEndpoint.start();

    agent = spawnAgent({
      CERTCTL_SERVER_URL: `https://127.0.0.1:${proxy.port}`,
      CERTCTL_SERVER_CERT_SHA256: proxy.fingerprint,
      CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN,
      CERTCTL_AGENT_NAME: 'e2e-agent',
      CERTCTL_KEY_DIR: keyDir,
      CERTCTL_AGENT_STATE_DIR: stateDir,
      CERTCTL_PLUGIN_DIRS: AGENT_PLUGINS_DIR,
      CERTCTL_DISCOVERY_DIRS: path.join(dir, 'discover'),
      CERTCTL_AGENT_ALLOWED_PATHS: site,
      CERTCTL_AGENT_POLL_INTERVAL: '150ms',
      CERTCTL_AGENT_HEARTBEAT_INTERVAL: '500ms',
      CERTCTL_VERIFY_DELAY: '20ms',
      CERTCTL_VERIFY_WINDOW: '1s',
    });
    const started = await agent.waitForLog('agent started', (l) => l.msg === 'agent started');
    agentId = started.agent_id;
  });

  afterAll(async () => {
    await agent?.stop();
    await proxy?.stop();
    await goodEndpoint?.stop();
    await wrongEndpoint?.stop();
    await t?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers with the bootstrap token, stores its key 0600, and heartbeats its host facts', async () => {
    expect(agentId).toMatch(/^[a-z0-9-]{3,64}$/);
    const creds = path.join(stateDir, 'credentials.json');
    expect(fs.statSync(creds).mode & 0o777).toBe(0o600);
    expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(JSON.parse(fs.readFileSync(creds, 'utf8')).agent_id).toBe(agentId);
    const row = await waitFor('an Online agent with facts', async () => {
      const r = await knex()('agents').where({ id: agentId }).first();
      return r?.status === 'Online' && r.last_heartbeat_at && r.hostname ? r : null;
    });
    expect(row).toMatchObject({ name: 'e2e-agent', os: process.platform, version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(row.architecture).toMatch(/amd64|arm64|386|arm/);
    expect(JSON.parse(typeof row.capabilities === 'string' ? row.capabilities : JSON.stringify(row.capabilities))).toContain('agent-file-target');
    // The registration used the bootstrap token; every later request the agent's own key.
    const register = proxy.requests.find((r) => r.path === '/api/v1/agents/register')!;
    expect(register.authorization).toBe(`Bearer ${TOKEN}`);
    expect(proxy.requests.filter((r) => r.path.includes('/heartbeat')).every((r) => r.authorization !== `Bearer ${TOKEN}`)).toBe(true);
  });

  it('reports the certificates it finds on disk, never the key beside them', async () => {
    const rows = await waitFor('a discovered certificate', async () => {
      const r = await knex()('discovered_certificates').where({ agent_id: agentId });
      return r.length ? r : null;
    });
    expect(rows.map((r) => [r.fingerprint_sha256, r.source_path])).toEqual([[sha256Hex(discovered), path.join(dir, 'discover', 'sub', 'legacy.pem')]]);
  });

  it('makes the key, sends the CSR, deploys the issued certificate and verifies the live endpoint', async () => {
    const target = await t.api.post('/api/v1/targets', {
      name: 'web files', type: 'agent-file-target', agent_id: agentId,
      config: { cert_path: path.join(site, 'web.crt'), key_path: path.join(site, 'web.key'), api_token: TARGET_SECRET, verify: { host: '127.0.0.1', port: goodEndpoint.port, server_name: 'web.example.com' } },
    });
    expect(target.status, target.text).toBe(201);
    const cert = await t.api.post('/api/v1/certificates', {
      name: 'web', common_name: 'web.example.com', sans: ['web.example.com', '127.0.0.1', 'ops@example.com'], issuer_id: 'iss-agent-e2e', agent_id: agentId, target_ids: [target.body.id],
    });
    expect(cert.status, cert.text).toBe(201);
    const certId = cert.body.id as string;
    webCertId = certId;

    const deployJob = await waitFor('a completed deployment', async () => {
      const j = (await knex()('jobs').where({ certificate_id: certId, type: 'Deployment' }).first()) as JobRow | undefined;
      return j && ['Completed', 'Failed'].includes(j.status) ? j : null;
    }, 40_000);
    expect(deployJob.status, deployJob.last_error ?? '').toBe('Completed');
    const version = await knex()('certificate_versions').where({ certificate_id: certId }).first();
    // The target's files hold the issued certificate and the agent's key, and the endpoint serves them.
    const served = fs.readFileSync(path.join(site, 'web.crt'), 'utf8');
    expect(sha256Hex(served)).toBe(version.fingerprint_sha256);
    const keyFiles = fs.readdirSync(path.join(keyDir, certId)).filter((f) => f.endsWith('.key'));
    expect(keyFiles).toHaveLength(1);
    const keyPath = path.join(keyDir, certId, keyFiles[0]);
    expect(fs.statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(keyDir, certId)).mode & 0o777).toBe(0o700);
    expect(fs.readFileSync(path.join(site, 'web.key'), 'utf8')).toBe(fs.readFileSync(keyPath, 'utf8'));
    expect(fs.statSync(path.join(site, 'web.key')).mode & 0o777).toBe(0o600);
    const verification = (await t.api.get(`/api/v1/jobs/${deployJob.id}/verification`)).body;
    expect(verification).toMatchObject({ status: 'success', observed_fingerprint_sha256: version.fingerprint_sha256 });

    // The CSR carried the names, split by type; the key never travelled.
    const csrReq = proxy.requests.find((r) => r.path.endsWith('/csr'))!;
    expect(JSON.parse(csrReq.body)).toMatchObject({ job_id: expect.any(String), csr_pem: expect.stringContaining('BEGIN CERTIFICATE REQUEST') });
    const keyBody = fs.readFileSync(keyPath, 'utf8').replace(/-----[^-]+-----|\s/g, '');
    for (const r of proxy.requests) {
      expect(r.body).not.toContain('PRIVATE KEY');
      expect(r.body.replace(/\\n|\s/g, '')).not.toContain(keyBody.slice(20, 80));
    }
    // The target's secret reached the plugin, not the logs.
    expect(JSON.stringify(agent.logs())).not.toContain(TARGET_SECRET);
  });

  it('renews with a new key, keeping the replaced one until the new certificate is deployed', async () => {
    const first = await knex()('certificate_versions').where({ certificate_id: webCertId }).first();
    const oldKey = fs.readdirSync(path.join(keyDir, webCertId)).find((f) => f.endsWith('.key'))!;
    const renew = await t.api.post(`/api/v1/certificates/${webCertId}/renew`, {});
    expect(renew.status, renew.text).toBeLessThan(300);
    const deployJob = await waitFor('the renewal deployed', async () => {
      const jobs = (await knex()('jobs').where({ certificate_id: webCertId, type: 'Deployment' }).orderBy('created_at')) as JobRow[];
      return jobs.length === 2 && ['Completed', 'Failed'].includes(jobs[1].status) ? jobs[1] : null;
    }, 40_000);
    expect(deployJob.status, deployJob.last_error ?? '').toBe('Completed');
    const second = await knex()('certificate_versions').where({ certificate_id: webCertId }).whereNot({ id: first.id }).first();
    expect(sha256Hex(fs.readFileSync(path.join(site, 'web.crt'), 'utf8'))).toBe(second.fingerprint_sha256);
    const keys = fs.readdirSync(path.join(keyDir, webCertId)).filter((f) => f.endsWith('.key'));
    const newKey = keys.find((k) => k !== oldKey)!;
    expect(keys.sort()).toEqual([oldKey, newKey].sort());
    expect(fs.readFileSync(path.join(site, 'web.key'), 'utf8')).toBe(fs.readFileSync(path.join(keyDir, webCertId, newKey), 'utf8'));
    expect(JSON.parse(fs.readFileSync(path.join(keyDir, webCertId, 'deployed.json'), 'utf8'))).toEqual({ current: newKey.replace('.key', ''), previous: oldKey.replace('.key', '') });
    expect((await t.api.get(`/api/v1/jobs/${deployJob.id}/verification`)).body).toMatchObject({ status: 'success' });
  });

  it('rolls back and reports Failed when the endpoint does not serve the deployed certificate', async () => {
    const other = path.join(site, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'app.crt'), 'OLD CERT');
    fs.writeFileSync(path.join(other, 'app.key'), 'OLD KEY', { mode: 0o640 });
    const target = await t.api.post('/api/v1/targets', {
      name: 'app files', type: 'agent-file-target', agent_id: agentId,
      config: { cert_path: path.join(other, 'app.crt'), key_path: path.join(other, 'app.key'), verify: { host: '127.0.0.1', port: wrongEndpoint.port, server_name: 'app.example.com', timeout_ms: 2000 } },
    });
    expect(target.status, target.text).toBe(201);
    const cert = await t.api.post('/api/v1/certificates', { name: 'app', common_name: 'app.example.com', issuer_id: 'iss-agent-e2e', agent_id: agentId, target_ids: [target.body.id] });
    expect(cert.status, cert.text).toBe(201);
    const deployJob = await waitFor('a finished deployment', async () => {
      const j = (await knex()('jobs').where({ certificate_id: cert.body.id, type: 'Deployment' }).first()) as JobRow | undefined;
      return j && ['Completed', 'Failed'].includes(j.status) ? j : null;
    }, 40_000);
    expect(deployJob.status).toBe('Failed');
    expect(deployJob.last_error).toMatch(/post-deployment verification failed/);
    // The old files are back, with their mode.
    expect(fs.readFileSync(path.join(other, 'app.crt'), 'utf8')).toBe('OLD CERT');
    expect(fs.readFileSync(path.join(other, 'app.key'), 'utf8')).toBe('OLD KEY');
    expect(fs.statSync(path.join(other, 'app.key')).mode & 0o777).toBe(0o640);
    const verification = (await t.api.get(`/api/v1/jobs/${deployJob.id}/verification`)).body;
    expect(verification).toMatchObject({ status: 'failed', observed_fingerprint_sha256: sha256Hex(placeholder.cert) });
    const result = proxy.requests.filter((r) => r.path.endsWith(`/jobs/${deployJob.id}/result`)).map((r) => JSON.parse(r.body));
    expect(result).toEqual([expect.objectContaining({ status: 'Failed', rolled_back: true, verification: expect.objectContaining({ status: 'failed' }) })]);
  });

  it('refuses a target whose paths lie outside CERTCTL_AGENT_ALLOWED_PATHS, writing nothing', async () => {
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(outside);
    const target = await t.api.post('/api/v1/targets', {
      name: 'outside files', type: 'agent-file-target', agent_id: agentId,
      config: { cert_path: path.join(outside, 'x.crt'), key_path: path.join(outside, 'x.key') },
    });
    expect(target.status, target.text).toBe(201);
    const cert = await t.api.post('/api/v1/certificates', { name: 'outside', common_name: 'outside.example.com', issuer_id: 'iss-agent-e2e', agent_id: agentId, target_ids: [target.body.id] });
    expect(cert.status, cert.text).toBe(201);
    const deployJob = await waitFor('a finished deployment', async () => {
      const j = (await knex()('jobs').where({ certificate_id: cert.body.id, type: 'Deployment' }).first()) as JobRow | undefined;
      return j && ['Completed', 'Failed'].includes(j.status) ? j : null;
    }, 40_000);
    expect(deployJob.status).toBe('Failed');
    expect(deployJob.last_error).toMatch(/outside the granted paths|no writable paths|granted no file paths/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it.each([
    ['RSA 3072', { algorithm: 'RSA', min_size: 3072 }, { type: 'rsa', bits: 3072 }],
    ['ECDSA P-384', { algorithm: 'ECDSA', min_size: 384 }, { type: 'ec', curve: 'secp384r1' }],
  ] as const)('makes the key type a %s-only profile asks for, and gets a certificate for it', async (label, rule, want) => {
    const profileId = `prof-agent-${rule.algorithm.toLowerCase()}-${rule.min_size}`;
    await knex()('certificate_profiles').insert({ id: profileId, name: `${label} only`, allowed_key_algorithms: JSON.stringify([rule]) });
    const cert = await t.api.post('/api/v1/certificates', { name: profileId, common_name: `${profileId}.example.com`, issuer_id: 'iss-agent-e2e', agent_id: agentId, profile_id: profileId });
    expect(cert.status, cert.text).toBe(201);
    const issuing = await waitFor('the issuance finished', async () => {
      const j = (await knex()('jobs').where({ certificate_id: cert.body.id, type: 'Issuance' }).first()) as JobRow | undefined;
      return j && ['Completed', 'Failed', 'Cancelled'].includes(j.status) ? j : null;
    }, 40_000);
    expect(issuing.status, issuing.last_error ?? '').toBe('Completed');
    const version = await knex()('certificate_versions').where({ certificate_id: cert.body.id }).first();
    const publicKey = new crypto.X509Certificate(version.pem_chain).publicKey;
    expect(publicKey.asymmetricKeyType).toBe(want.type);
    if (want.type === 'rsa') expect(publicKey.asymmetricKeyDetails?.modulusLength).toBe(want.bits);
    else expect(publicKey.asymmetricKeyDetails?.namedCurve).toBe(want.curve);
    // The key stayed on the agent, 0600, and is the certificate's.
    const keyFiles = fs.readdirSync(path.join(keyDir, cert.body.id)).filter((f) => f.endsWith('.key'));
    expect(keyFiles).toHaveLength(1);
    const keyPath = path.join(keyDir, cert.body.id, keyFiles[0]);
    expect(fs.statSync(keyPath).mode & 0o777).toBe(0o600);
    const spki = (k: crypto.KeyObject) => k.export({ type: 'spki', format: 'der' });
    expect(spki(crypto.createPublicKey(fs.readFileSync(keyPath, 'utf8'))).equals(spki(publicKey))).toBe(true);
  });

  it('stops gracefully on SIGTERM and reuses its stored key on the next start', async () => {
    expect(await agent.stop()).toBe(0);
    expect(agent.logs().some((l) => l.msg === 'agent stopped')).toBe(true);
    const before = proxy.requests.length;
    agent = spawnAgent({
      CERTCTL_SERVER_URL: `https://127.0.0.1:${proxy.port}`, CERTCTL_SERVER_CERT_SHA256: proxy.fingerprint, CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN,
      CERTCTL_KEY_DIR: keyDir, CERTCTL_AGENT_STATE_DIR: stateDir, CERTCTL_PLUGIN_DIRS: AGENT_PLUGINS_DIR, CERTCTL_AGENT_POLL_INTERVAL: '150ms',
    });
    const again = await agent.waitForLog('agent started', (l) => l.msg === 'agent started');
    expect(again).toMatchObject({ agent_id: agentId, credentials: 'stored' });
    expect(proxy.requests.slice(before).some((r) => r.path === '/api/v1/agents/register')).toBe(false);
  });
});
