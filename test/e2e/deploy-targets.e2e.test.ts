import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import { sha256Hex, spawnAgent, tempDir, type AgentProcess } from '../agent/agent-support.js';
import { waitFor } from '../support/wait.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { makeTestPki } from '../targets/support/certs.js';
import { servedFingerprint, startServer, waitForFingerprint, type ServerKind, type TlsServer } from '../targets/web-servers.js';

const TOKEN = 'e2e-deploy-targets-bootstrap-token-01';
const KINDS: ServerKind[] = ['nginx', 'apache', 'haproxy'];

/**
 * Issue #4, "done means" 1: the kernel, a real `certctl agent` process, and real
 * NGINX, Apache httpd and HAProxy on loopback. Each gets a certificate: the agent
 * makes the key and CSR, the Local CA signs in the kernel, the agent deploys
 * through the server's target plugin and verifies the live endpoint; a forced
 * renewal makes every server serve a new serial; a broken validate command rolls
 * back and the server keeps serving the certificate it had.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('issue, deploy and renew onto real nginx, apache2 and haproxy', () => {
  let t: TestKernel;
  let agent: AgentProcess;
  let dir: string;
  let caPem: string;
  const servers = {} as Record<ServerKind, TlsServer>;
  const targets = {} as Record<ServerKind, string>;
  const certs = {} as Record<ServerKind, string>;
  const served = {} as Record<ServerKind, { fingerprint: string; serial: string }>;
  const knex = () => t.kernel.db.knex;

  /**
   * The newest Deployment job of a certificate once it has finished, among those created after
   * `after` that did not exist yet when the step began (the previous step's deployment can
   * finish within the clock slack of `after`).
   */
  const seenDeployments = new Set<string>();
  const finishedDeployment = (certificateId: string, after: Date) => waitFor(`a finished deployment of ${certificateId}`, async () => {
    const j = (await knex()('jobs').where({ certificate_id: certificateId, type: 'Deployment' }).where('created_at', '>', after)
      .whereNotIn('id', [...seenDeployments]).orderBy('created_at', 'desc').first()) as JobRow | undefined;
    return j && ['Completed', 'Failed', 'Cancelled'].includes(j.status) ? j : null;
  }, 60_000);
  const latestVersion = (certificateId: string) => knex()('certificate_versions').where({ certificate_id: certificateId }).orderBy('created_at', 'desc').first();

  beforeAll(async () => {
    dir = tempDir('certctl-e2e-targets-');
    const pki = makeTestPki();
    const placeholder = pki.issue('site.certctl.test');
    pki.cleanup();
    await Promise.all(KINDS.map(async (k) => { servers[k] = await startServer(k, path.join(dir, k), placeholder); }));

    t = await startTestKernel({ env: { CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN, CERTCTL_JOB_PROCESSOR_INTERVAL: '200ms', CERTCTL_JOB_MAX_ATTEMPTS: '1' } });
    const issuer = await t.api.post('/api/v1/issuers', { id: 'iss-e2e-local', name: 'E2E Local CA', type: 'local-ca', config: { subject: 'CN=certctl e2e Local CA' } });
    expect(issuer.status, issuer.text).toBe(201);

    agent = spawnAgent({
      CERTCTL_SERVER_URL: t.kernel.url.replace('localhost', '127.0.0.1'),
      CERTCTL_SERVER_CERT_SHA256: sha256Hex(fs.readFileSync(path.join(t.dataDir, 'tls', 'server.crt'), 'utf8')),
      CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN,
      CERTCTL_AGENT_NAME: 'e2e-web-host',
      CERTCTL_KEY_DIR: path.join(dir, 'agent-keys'),
      CERTCTL_AGENT_STATE_DIR: path.join(dir, 'agent-state'),
      CERTCTL_AGENT_ALLOWED_PATHS: KINDS.map((k) => path.join(dir, k, 'tls')).join(','),
      // Beyond the target manifests' own commands: HAProxy's pid-file reload here, and the broken validate below.
      CERTCTL_AGENT_ALLOWED_COMMANDS: '/usr/bin/pkill,/usr/bin/false',
      CERTCTL_AGENT_POLL_INTERVAL: '150ms',
      CERTCTL_AGENT_HEARTBEAT_INTERVAL: '1s',
      CERTCTL_VERIFY_DELAY: '100ms',
      CERTCTL_VERIFY_WINDOW: '10s',
    });
    const agentId = (await agent.waitForLog('agent started', (l) => l.msg === 'agent started')).agent_id as string;

    for (const k of KINDS) {
      const target = await t.api.post('/api/v1/targets', { name: `${k} on e2e-web-host`, type: k, agent_id: agentId, config: servers[k].pluginConfig });
      expect(target.status, target.text).toBe(201);
      targets[k] = target.body.id;
    }
    caPem = '';
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await t?.stop();
    await Promise.all(KINDS.map((k) => servers[k]?.stop()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('issues a certificate for each server through the agent and the Local CA, and each server serves it', async () => {
    const start = new Date(Date.now() - 1000);
    for (const id of (await knex()('jobs').where({ type: 'Deployment' }).pluck('id')) as string[]) seenDeployments.add(id);
    for (const k of KINDS) {
      const cert = await t.api.post('/api/v1/certificates', { name: `site on ${k}`, common_name: 'site.certctl.test', sans: ['site.certctl.test'], issuer_id: 'iss-e2e-local', agent_id: (await knex()('targets').where({ id: targets[k] }).first()).agent_id, target_ids: [targets[k]] });
      expect(cert.status, cert.text).toBe(201);
      certs[k] = cert.body.id;
    }
    for (const k of KINDS) {
      const job = await finishedDeployment(certs[k], start);
      expect(job.status, `${k}: ${job.last_error ?? ''}`).toBe('Completed');
      const version = await latestVersion(certs[k]);
      expect(await waitForFingerprint(servers[k].port, version.fingerprint_sha256)).toBe(version.fingerprint_sha256);
      const leaf = new crypto.X509Certificate(version.pem_chain);
      const chain = String(version.pem_chain).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
      caPem ||= chain[chain.length - 1];
      expect(leaf.checkIssued(new crypto.X509Certificate(caPem)) && leaf.verify(new crypto.X509Certificate(caPem).publicKey), `${k}: signed by the Local CA`).toBe(true);
      served[k] = { fingerprint: version.fingerprint_sha256, serial: leaf.serialNumber };
      const verification = (await t.api.get(`/api/v1/jobs/${job.id}/verification`)).body;
      expect(verification).toMatchObject({ status: 'success', observed_fingerprint_sha256: version.fingerprint_sha256 });
    }
  });

  it('a forced renewal makes every server serve a new serial', async () => {
    const start = new Date(Date.now() - 1000);
    for (const id of (await knex()('jobs').where({ type: 'Deployment' }).pluck('id')) as string[]) seenDeployments.add(id);
    for (const k of KINDS) expect((await t.api.post(`/api/v1/certificates/${certs[k]}/renew`, {})).status).toBeLessThan(300);
    for (const k of KINDS) {
      const job = await finishedDeployment(certs[k], start);
      expect(job.status, `${k}: ${job.last_error ?? ''}`).toBe('Completed');
      const version = await latestVersion(certs[k]);
      const serial = new crypto.X509Certificate(version.pem_chain).serialNumber;
      expect(serial).not.toBe(served[k].serial);
      expect(await waitForFingerprint(servers[k].port, version.fingerprint_sha256)).toBe(version.fingerprint_sha256);
      served[k] = { fingerprint: version.fingerprint_sha256, serial };
    }
  });

  it('a broken validate command rolls back: the job fails and each server keeps serving its certificate', async () => {
    const start = new Date(Date.now() - 1000);
    for (const id of (await knex()('jobs').where({ type: 'Deployment' }).pluck('id')) as string[]) seenDeployments.add(id);
    const files = Object.fromEntries(KINDS.map((k) => [k, Object.values(servers[k].files).map((f) => fs.readFileSync(f, 'utf8'))]));
    for (const k of KINDS) {
      const put = await t.api.put(`/api/v1/targets/${targets[k]}`, { config: { ...servers[k].pluginConfig, validate_command: ['/usr/bin/false'] } });
      expect(put.status, put.text).toBe(200);
      expect((await t.api.post(`/api/v1/certificates/${certs[k]}/renew`, {})).status).toBeLessThan(300);
    }
    for (const k of KINDS) {
      const job = await finishedDeployment(certs[k], start);
      expect(job.status).toBe('Failed');
      expect(job.last_error).toMatch(/validate command \/usr\/bin\/false exited with 1/);
      expect(Object.values(servers[k].files).map((f) => fs.readFileSync(f, 'utf8'))).toEqual(files[k]);
      expect(await servedFingerprint(servers[k].port)).toBe(served[k].fingerprint);
    }
  });
});
