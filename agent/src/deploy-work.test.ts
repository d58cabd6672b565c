import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { DeployWorkItem } from '@certctl/kernel';
import { AgentPluginHost } from './agent-plugin-host.js';
import { leaseTooShort, runDeployItem } from './deploy-work.js';
import { KeyStore } from './key-store.js';
import { LocalKv } from './local-kv.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/agent-plugins/', import.meta.url));
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-deploy-')));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const keys = new KeyStore(path.join(tmp, 'keys'));
const site = path.join(tmp, 'site');
fs.mkdirSync(site);
const log = pino({ level: 'silent' });
const host = new AgentPluginHost({ pluginDirs: [FIXTURES], workspacePluginsDir: null, log, kv: new LocalKv(path.join(tmp, 'state', 'kv')), policy: { allowedPaths: [tmp], allowedCommands: [], protectedDirs: [keys.dir, path.join(tmp, 'state')] } });
const deps = { host, keys, log, verifyDelayMs: 0, verifyTimeoutMs: 1000, signal: new AbortController().signal };

const certForKey = (keyPath: string) => execFileSync('openssl', ['req', '-x509', '-new', '-key', keyPath, '-subj', '/CN=d.example', '-days', '2']).toString();
/** A key made outside the agent's key store (another agent's, or the server's). */
function keyFile(name: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return file;
}
const fp = (pem: string) => crypto.createHash('sha256').update(new crypto.X509Certificate(pem).raw).digest('hex');

function item(certificatePem: string, extra: Partial<DeployWorkItem> = {}, config: Record<string, unknown> = {}): DeployWorkItem {
  return {
    kind: 'deploy', job_id: 'job-d', certificate_id: 'mc-d', version_id: 'cv-1', serial_number: '01', fingerprint_sha256: fp(certificatePem),
    certificate_pem: certificatePem, chain_pem: [], key: { source: 'agent' },
    target: { id: 'tgt-d', name: 'd', type: 'agent-file-target', config: { cert_path: path.join(site, 'd.crt'), key_path: path.join(site, 'd.key'), ...config } },
    lease_expires_at: new Date(Date.now() + 60_000).toISOString(), attempt: 2, ...extra,
  };
}

describe('a deployment on the agent', () => {
  it('deploys with the key that matches the certificate and echoes the lease attempt', async () => {
    await keys.init();
    const key = await keys.createKey('mc-d');
    const cert = certForKey(key.keyPath);
    const out = await runDeployItem(item(cert), deps);
    expect(out).toEqual({ status: 'Completed', changed: true, rolled_back: false, verification: { status: 'skipped' }, attempt: 2 });
    expect(fs.readFileSync(path.join(site, 'd.key'), 'utf8')).toBe(fs.readFileSync(key.keyPath, 'utf8'));
    // Same bytes again: nothing changes.
    expect(await runDeployItem(item(cert), deps)).toMatchObject({ status: 'Completed', changed: false });
  });

  it('fails cleanly, writing nothing, when the data do not hold together', async () => {
    const key = await keys.createKey('mc-d');
    const cert = certForKey(key.keyPath);
    const before = fs.readFileSync(path.join(site, 'd.crt'), 'utf8');
    expect(await runDeployItem(item(cert, { fingerprint_sha256: 'ab'.repeat(32) }), deps)).toMatchObject({ status: 'Failed', error: expect.stringMatching(/does not match the fingerprint/) });
    const stranger = certForKey(keyFile('stranger.key'));
    expect(await runDeployItem(item(stranger), deps)).toMatchObject({ status: 'Failed', error: expect.stringMatching(/holds no private key/) });
    expect(await runDeployItem(item(cert, { target: { id: 't', name: 't', type: 'no-such-target', config: {} } }), deps)).toMatchObject({ status: 'Failed', error: expect.stringMatching(/cannot run on this agent/) });
    expect(await runDeployItem(item(cert, {}, { surprise: true }), deps)).toMatchObject({ status: 'Failed', error: expect.stringMatching(/does not fit plugin agent-file-target's schema/) });
    expect(await runDeployItem(item(cert, { certificate_pem: 'junk' }), deps)).toMatchObject({ status: 'Failed', error: expect.stringMatching(/no parsable certificate/) });
    expect(fs.readFileSync(path.join(site, 'd.crt'), 'utf8')).toBe(before);
  });

  it('stores a server-made key in the key store and deploys it; an unreachable verify endpoint fails and rolls back', async () => {
    const cert = certForKey(keyFile('srv.key'));
    const serverKey = fs.readFileSync(path.join(tmp, 'srv.key'), 'utf8');
    const previous = fs.readFileSync(path.join(site, 'd.crt'), 'utf8');
    const out = await runDeployItem(item(cert, { key: { source: 'server', private_key_pem: serverKey } }, { verify: { host: '127.0.0.1', port: 1, timeout_ms: 500 } }), deps);
    expect(out).toMatchObject({ status: 'Failed', rolled_back: true, verification: { status: 'failed', error: expect.stringMatching(/cannot probe the endpoint: .*ECONNREFUSED/) } });
    expect(fs.readFileSync(path.join(site, 'd.crt'), 'utf8')).toBe(previous);
    expect(await keys.findKeyFor('mc-d', cert)).not.toBeNull();
  });

  it('leaves a job alone, touching nothing and reporting nothing, when too little of its lease is left', async () => {
    const key = await keys.createKey('mc-d');
    const cert = certForKey(key.keyPath);
    const before = fs.readFileSync(path.join(site, 'd.crt'), 'utf8');
    const soon = (ms: number) => ({ lease_expires_at: new Date(Date.now() + ms).toISOString() });
    for (const ms of [-1_000, 2_000, 12_000]) expect(leaseTooShort(item(cert, soon(ms)), deps), String(ms)).toBe(true);
    // The verify window counts: a lease that would do without it is too short with it.
    expect(leaseTooShort(item(cert, soon(20_000)), deps)).toBe(false);
    expect(leaseTooShort(item(cert, soon(20_000)), { ...deps, verifyWindowMs: 15_000 })).toBe(true);
    expect(await runDeployItem(item(cert, soon(3_000)), deps)).toBeNull();
    expect(fs.readFileSync(path.join(site, 'd.crt'), 'utf8')).toBe(before);
  });
});
