import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeployRequest, DeployResult, Json } from '@certctl/sdk';
import { createRealAgent, type RealAgent } from '../support/real-agent-context.js';
import { waitFor } from '../support/wait.js';
import { makeTestPki, type TestCert } from './support/certs.js';
import { servedFingerprint, startServer, waitForFingerprint, type ServerKind, type TlsServer } from './web-servers.js';

/**
 * The same real-server scenario for each file-based target: a real server on
 * loopback, the plugin run by the agent's own plugin host, certificates made with
 * openssl, and every claim checked with a TLS handshake against the server.
 */
export function describeRealTarget(kind: ServerKind, opts: { validateRejectsEncryptedKey: boolean }): void {
  describe(`${kind} target against a real ${kind}`, () => {
    let dir: string;
    let server: TlsServer;
    let agent: RealAgent;
    let pki: ReturnType<typeof makeTestPki>;
    let initial: TestCert;
    const deployed: { cert: TestCert; snapshotId?: string }[] = [];
    const target = (over: Record<string, unknown> = {}) => ({ id: `tgt-${kind}`, type: kind, config: { ...server.pluginConfig, ...over } });
    const requestFor = (cert: TestCert, keyPath: string): DeployRequest => ({ certificateId: `mc-${kind}`, certificatePem: cert.certificatePem, chainPem: cert.chainPem, keyPath, fingerprintSha256: cert.fingerprintSha256 });
    const deploy = (cert: TestCert, over: Record<string, unknown> = {}, keyPem = cert.keyPem) => {
      const keyPath = agent.storeKey(`${kind}-${cert.fingerprintSha256.slice(0, 12)}`, keyPem);
      return agent.call<DeployResult>(target(over), 'deploy', requestFor(cert, keyPath) as unknown as Json, { keyPath });
    };
    const managedFiles = () => Object.fromEntries(Object.values(server.files).map((f) => [f, fs.readFileSync(f, 'utf8')]));
    const modes = () => Object.values(server.files).map((f) => fs.statSync(f).mode & 0o777);

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `certctl-${kind}-`));
      pki = makeTestPki();
      initial = pki.issue('site.certctl.test');
      server = await startServer(kind, path.join(dir, 'server'), initial);
      agent = createRealAgent(dir);
    });
    afterAll(async () => {
      await server?.stop();
      pki?.cleanup();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('deploys a new certificate: the server serves it after validate and reload, files keep their mode', async () => {
      expect(await servedFingerprint(server.port)).toBe(initial.fingerprintSha256);
      const cert = pki.issue('site.certctl.test');
      const reloadsBefore = server.reloads();
      const r = await deploy(cert);
      expect(r).toEqual({ status: 'deployed', changed: true, snapshotId: expect.any(String) });
      expect(await waitForFingerprint(server.port, cert.fingerprintSha256)).toBe(cert.fingerprintSha256);
      expect(server.reloads()).toBe(reloadsBefore + 1);
      expect(modes()).toEqual(Object.values(server.files).map(() => 0o640));
      for (const created of Object.values(server.newFiles)) {
        expect(fs.statSync(created).mode & 0o777).toBe(0o644);
        expect(fs.readFileSync(created, 'utf8')).toBe(cert.chainPem.join(''));
      }
      const all = Object.values(managedFiles()).join('');
      expect(all).toContain(cert.certificatePem.trim());
      expect(all).toContain(cert.keyPem.trim());
      deployed.push({ cert, snapshotId: (r as { snapshotId: string }).snapshotId });
    });

    it('redeploying the same certificate changes nothing and does not reload', async () => {
      const { cert } = deployed[0];
      const before = { files: managedFiles(), pid: server.pid(), reloads: server.reloads() };
      expect(await deploy(cert)).toEqual({ status: 'deployed', changed: false });
      expect(managedFiles()).toEqual(before.files);
      expect(server.pid()).toBe(before.pid);
      expect(server.reloads()).toBe(before.reloads);
      expect(await servedFingerprint(server.port)).toBe(cert.fingerprintSha256);
    });

    it('a failing validate command rolls the files back and the server keeps the old certificate', async () => {
      const { cert: current } = deployed[0];
      const before = { files: managedFiles(), reloads: server.reloads() };
      const r = await deploy(pki.issue('site.certctl.test'), { validate_command: ['/usr/bin/false'] });
      expect(r).toMatchObject({ status: 'failed', rolledBack: true, reason: expect.stringMatching(/validate command \/usr\/bin\/false exited with 1/) });
      expect(managedFiles()).toEqual(before.files);
      expect(server.reloads()).toBe(before.reloads);
      expect(await servedFingerprint(server.port)).toBe(current.fingerprintSha256);
    });

    it('a key that does not belong to the certificate is refused before anything is written', async () => {
      const { cert: current } = deployed[0];
      const before = { files: managedFiles(), reloads: server.reloads() };
      const r = await deploy(pki.issue('site.certctl.test'), {}, pki.issue('site.certctl.test').keyPem);
      expect(r).toEqual({ status: 'failed', rolledBack: false, reason: expect.stringMatching(/does not belong to the certificate; nothing was written/) });
      expect(managedFiles()).toEqual(before.files);
      expect(server.reloads()).toBe(before.reloads);
      expect(await servedFingerprint(server.port)).toBe(current.fingerprintSha256);
    });

    it.runIf(opts.validateRejectsEncryptedKey)("the server's own config test rejects a key it cannot load: rolled back, old certificate kept", async () => {
      const { cert: current } = deployed[0];
      const before = { files: managedFiles(), reloads: server.reloads() };
      const cert = pki.issue('site.certctl.test');
      // A passphrase-protected key: the plugin cannot check it, the server's config test can.
      const encrypted = execFileSync('/usr/bin/openssl', ['pkcs8', '-topk8', '-v2', 'aes256', '-passout', 'pass:not-given'], { input: cert.keyPem }).toString();
      const r = await deploy(cert, {}, encrypted);
      expect(r).toMatchObject({ status: 'failed', rolledBack: true, reason: expect.stringMatching(/^validate command .* exited with [1-9]/) });
      expect(managedFiles()).toEqual(before.files);
      expect(server.reloads()).toBe(before.reloads);
      expect(await servedFingerprint(server.port)).toBe(current.fingerprintSha256);
    });

    it('rollback restores the previous files and reloads (what the agent does when verification fails)', async () => {
      const { cert: first } = deployed[0];
      const reloadsBefore = server.reloads();
      const next = pki.issue('site.certctl.test');
      const r = (await deploy(next)) as { status: string; snapshotId: string };
      expect(r.status).toBe('deployed');
      expect(await waitForFingerprint(server.port, next.fingerprintSha256)).toBe(next.fingerprintSha256);
      expect(await agent.call(target(), 'rollback', { snapshotId: r.snapshotId })).toEqual({ ok: true });
      expect(await waitForFingerprint(server.port, first.fingerprintSha256)).toBe(first.fingerprintSha256);
      // The server logs a reload when its master process handles the signal, which on a busy
      // machine can come after the old workers already answered: wait for both reloads (deploy,
      // rollback) to be logged, so the next test's "no reload" count starts from a settled log.
      await waitFor('the deploy and rollback reloads in the server log', () => server.reloads() >= reloadsBefore + 2);
      expect(server.reloads()).toBe(reloadsBefore + 2);
    });

    it('refuses a shell string or a path escape in the config before touching the server', async () => {
      const before = { files: managedFiles(), reloads: server.reloads() };
      const cert = pki.issue('site.certctl.test');
      const reload = (server.pluginConfig.reload_command as string[]).join(' ');
      const firstPath = Object.keys(server.files)[0];
      for (const over of [{ reload_command: [`${reload}; rm -rf ${dir}`] }, { [firstPath]: `${path.dirname(Object.values(server.files)[0])}/../../escape.pem` }]) {
        const outcome = await deploy(cert, over).then((r) => r.status, (err: Error) => `refused: ${err.message}`);
        expect(outcome === 'failed' || outcome.startsWith('refused'), JSON.stringify({ over, outcome })).toBe(true);
      }
      expect(managedFiles()).toEqual(before.files);
      expect(server.reloads()).toBe(before.reloads);
      expect(fs.existsSync(dir)).toBe(true);
    });
  });
}
