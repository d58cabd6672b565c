import { describe, expect, it } from 'vitest';
import type { Json } from '../index.js';
import { createTestHost } from '../testing/index.js';
import { TARGET_CHAIN_CERT_PEM, TARGET_FIRST_CERT_PEM, TARGET_FIRST_KEY_PEM, TARGET_SECOND_CERT_PEM, TARGET_SECOND_KEY_PEM } from '../testing/target-fixtures.js';
import { defineFileTarget, keyPairProblem, leafChainBundle } from './index.js';

const plugin = defineFileTarget({
  pathFields: { cert_path: true, key_path: true },
  validateCommand: { field: 'validate_command', default: ['/usr/sbin/web', '-t'] },
  reloadCommand: { field: 'reload_command', default: ['/usr/sbin/web', 'reload'] },
  needsKey: true,
  files: ({ request, keyPem, paths }) => [{ path: paths.cert_path!, content: leafChainBundle(request.certificatePem, request.chainPem) }, { path: paths.key_path!, content: keyPem! }],
});

const KEY = '/var/lib/certctl/keys/mc-1.key';
const config = { cert_path: '/etc/web/site.crt', key_path: '/etc/web/site.key' };
const host = (cfg: Record<string, Json> = config, exitCode = 0) => createTestHost({
  plugin, config: cfg, files: { [KEY]: TARGET_FIRST_KEY_PEM },
  grants: { kv: true, fs: { paths: ['/etc/web', KEY] }, exec: { commands: ['/usr/sbin/web'] } },
  exec: () => ({ exitCode, stdout: '', stderr: exitCode ? 'web: config broken' : '' }),
});
const request = (certificatePem = TARGET_FIRST_CERT_PEM, keyPath = KEY) => ({ certificateId: 'mc-1', certificatePem, chainPem: [TARGET_CHAIN_CERT_PEM], keyPath, fingerprintSha256: 'ab' });

describe('defineFileTarget', () => {
  it('deploys with the default commands, then rolls back', async () => {
    const h = host();
    const r = (await h.call('deploy', request())) as { status: string; snapshotId: string };
    expect(r).toMatchObject({ status: 'deployed', changed: true });
    expect(h.files.get('/etc/web/site.key')).toBe(TARGET_FIRST_KEY_PEM);
    expect(h.commands.map((c) => [c.command, ...c.args].join(' '))).toEqual(['/usr/sbin/web -t', '/usr/sbin/web reload']);
    expect(await h.call('rollback', { snapshotId: r.snapshotId })).toEqual({ ok: true });
    expect([...h.files.keys()]).toEqual([KEY]);
  });

  it('refuses a key that does not belong to the certificate before writing anything', async () => {
    const h = host();
    expect(await h.call('deploy', request(TARGET_SECOND_CERT_PEM))).toEqual({ status: 'failed', rolledBack: false, reason: 'the private key at keyPath does not belong to the certificate; nothing was written' });
    expect([...h.files.keys()]).toEqual([KEY]);
    expect(h.commands).toEqual([]);
  });

  it("does not copy the agent's key onto itself when key_path is the key file", async () => {
    const h = host({ ...config, key_path: KEY });
    expect(await h.call('deploy', request())).toMatchObject({ status: 'deployed', changed: true });
    expect([...h.files.keys()].sort()).toEqual(['/etc/web/site.crt', KEY]);
  });

  it('answers config problems from deploy, validateConfig and rollback without side effects', async () => {
    for (const cfg of [{ cert_path: '/etc/web/site.crt' }, { ...config, reload_command: ['/usr/sbin/web reload; reboot'] }, { ...config, verify: { host: 'x', port: 0 } }, { ...config, key_path: config.cert_path }]) {
      const h = host(cfg as Record<string, Json>);
      expect(await h.call('deploy', request()), JSON.stringify(cfg)).toMatchObject({ status: 'failed', rolledBack: false, reason: expect.stringMatching(/^invalid target config: /) });
      expect(await h.call('validateConfig', {})).toMatchObject({ ok: false });
      expect(await h.call('rollback', { snapshotId: '00000000a-000000000000' })).toMatchObject({ ok: false, reason: expect.stringMatching(/^invalid target config/) });
      expect([...h.files.keys()]).toEqual([KEY]);
    }
    expect(await host().call('validateConfig', {})).toEqual({ ok: true });
  });

  it('validate runs the validate command against the current files', async () => {
    expect(await host().call('validate', {})).toEqual({ ok: true });
    expect(await host(config, 1).call('validate', {})).toEqual({ ok: false, reason: '/usr/sbin/web exited with 1: web: config broken' });
  });

  it('keyPairProblem checks the pair and leaves unparseable keys to the server', async () => {
    expect(await keyPairProblem(TARGET_SECOND_CERT_PEM, TARGET_SECOND_KEY_PEM)).toBeNull();
    expect(await keyPairProblem(TARGET_SECOND_CERT_PEM, TARGET_FIRST_KEY_PEM)).toMatch(/does not belong/);
    expect(await keyPairProblem(TARGET_SECOND_CERT_PEM, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n')).toBeNull();
  });
});
