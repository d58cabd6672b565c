import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import { quoteArgv } from '../../plugins/targets/ssh/src/shell-quote.js';
import type { TestCert } from './support/certs.js';
import { createAgentHarness, type AgentHarness } from './support/agent-harness.js';
import { makeKeyPair, SFTP_SERVER, startSshServer, type TestSshServer } from './support/ssh-server.js';

/**
 * The agentless SSH target, run by the agent's own plugin host (a worker thread,
 * the job's grants, the agent's kv on disk), against a real SSH server on
 * loopback: ssh2's server speaking the protocol, OpenSSH's sftp-server for the
 * files, /bin/sh for commands. Everything on the "remote" side is real files in
 * a temp dir.
 */
const USER = 'deploy';
const PASSWORD = 'correct horse battery staple';

let server: TestSshServer;
let root: string;
let clientKey: { privateKey: string; publicKey: string };
let h: AgentHarness;
let first: TestCert;
let second: TestCert;
let caseNo = 0;

beforeAll(async () => {
  h = createAgentHarness('ssh');
  root = h.mkdir('remote');
  clientKey = makeKeyPair();
  server = await startSshServer({ user: USER, password: PASSWORD, clientPublicKey: clientKey.publicKey, hostPrivateKey: makeKeyPair().privateKey, cwd: root });
  first = h.pki.issue('one.ssh.certctl.test');
  second = h.pki.issue('two.ssh.certctl.test');
});
afterAll(async () => {
  await server?.close();
  h?.cleanup();
});

/** A fresh remote directory and one target instance of the plugin (secrets go in the config, as the control plane sends them). */
function setup(overrides: Record<string, unknown> = {}, secrets: Record<string, string> = { private_key: clientKey.privateKey }) {
  const dir = path.join(root, `case-${++caseNo}`);
  fs.mkdirSync(dir);
  const id = `tgt-ssh-${caseNo}`;
  const config: Record<string, unknown> = { host: '127.0.0.1', port: server.port, user: USER, auth_method: 'key', host_key_fingerprint: server.hostKeyFingerprint, cert_path: `${dir}/site.crt`, key_path: `${dir}/site.key`, cert_mode: '0644', key_mode: '0600', timeout_seconds: 10, ...secrets, ...overrides };
  for (const [k, v] of Object.entries(config)) if (v === undefined) delete config[k];
  const host = {
    call: (method: string, request: Json) => (method === 'deploy' ? h.deploy('ssh', config, request as unknown as TestCert, { id }) : h.call('ssh', config, method, request, id)) as Promise<Json>,
  };
  return { host, dir };
}
const request = (cert: TestCert) => cert as unknown as Json;
const modeOf = (p: string) => fs.statSync(p).mode & 0o777;
const read = (p: string) => fs.readFileSync(p, 'utf8');
const listing = (dir: string) => fs.readdirSync(dir).sort();
const countLines = (p: string) => (fs.existsSync(p) ? read(p).split('\n').filter(Boolean).length : 0);

describe('ssh target: deploys over SSH/SFTP to a real server', () => {
  it('places leaf+chain and key atomically with the configured modes, runs the reload, and answers a snapshot', async () => {
    const { host, dir } = setup({ reload_command: ['/bin/sh', '-c', 'echo reloaded >> "$0"', `${path.join(root, 'reload-1.log')}`] });
    const r = (await host.call('deploy', request(first))) as Record<string, Json>;
    expect(r).toMatchObject({ status: 'deployed', changed: true });
    expect(typeof r.snapshotId).toBe('string');
    expect(read(`${dir}/site.crt`)).toBe(first.certificatePem.trim() + '\n' + first.chainPem[0].trim() + '\n');
    expect(read(`${dir}/site.key`)).toContain('PRIVATE KEY');
    expect(modeOf(`${dir}/site.crt`)).toBe(0o644);
    expect(modeOf(`${dir}/site.key`)).toBe(0o600);
    expect(countLines(path.join(root, 'reload-1.log'))).toBe(1);
    expect(listing(dir)).toEqual(['site.crt', 'site.key']); // no temp or backup files of a first deploy

    // Same bytes again: nothing written, no reload.
    expect(await host.call('deploy', request(first))).toEqual({ status: 'deployed', changed: false });
    expect(countLines(path.join(root, 'reload-1.log'))).toBe(1);
    expect(await host.call('verify', { fingerprintSha256: first.fingerprintSha256 })).toMatchObject({ status: 'success' });
    expect(await host.call('validate', {})).toEqual({ ok: true });
  });

  it('keeps an existing file mode, keeps the old inode as the snapshot, and rolls back to it', async () => {
    const { host, dir } = setup();
    fs.writeFileSync(`${dir}/site.crt`, 'old certificate\n', { mode: 0o640 });
    fs.writeFileSync(`${dir}/site.key`, 'old key\n', { mode: 0o400 });
    fs.chmodSync(`${dir}/site.crt`, 0o640);
    fs.chmodSync(`${dir}/site.key`, 0o400);
    const r = (await host.call('deploy', request(second))) as Record<string, Json>;
    expect(r.status).toBe('deployed');
    expect(modeOf(`${dir}/site.crt`)).toBe(0o640);
    expect(modeOf(`${dir}/site.key`)).toBe(0o400);
    expect(read(`${dir}/site.crt`)).toContain('BEGIN CERTIFICATE');
    expect(listing(dir).filter((f) => f.includes('.certctl-bak-'))).toHaveLength(2);

    expect(await host.call('verify', { fingerprintSha256: first.fingerprintSha256 })).toMatchObject({ status: 'failed', observedFingerprintSha256: second.fingerprintSha256 });
    expect(await host.call('rollback', { snapshotId: r.snapshotId })).toEqual({ ok: true });
    expect(read(`${dir}/site.crt`)).toBe('old certificate\n');
    expect(read(`${dir}/site.key`)).toBe('old key\n');
    expect(modeOf(`${dir}/site.key`)).toBe(0o400);
    expect(listing(dir)).toEqual(['site.crt', 'site.key']);
    // A snapshot is restored once.
    expect(await host.call('rollback', { snapshotId: r.snapshotId })).toMatchObject({ ok: false });
  });

  it('writes a separate chain file when chain_path is set', async () => {
    const { host, dir } = setup({ chain_path: `${root}/case-${caseNo + 1}/chain.pem` });
    expect(await host.call('deploy', request(first))).toMatchObject({ status: 'deployed', changed: true });
    expect(read(`${dir}/site.crt`)).toBe(first.certificatePem.trim() + '\n');
    expect(read(`${dir}/chain.pem`)).toBe(first.chainPem[0].trim() + '\n');
  });

  it('a failing reload restores the previous files and reloads them again', async () => {
    const log = path.join(root, 'reload-fail.log');
    const { host, dir } = setup({ reload_command: ['/bin/sh', '-c', 'echo attempt >> "$0"; echo "config test failed" >&2; exit 3', log] });
    fs.writeFileSync(`${dir}/site.crt`, 'old certificate\n');
    const r = (await host.call('deploy', request(first))) as Record<string, Json>;
    expect(r).toMatchObject({ status: 'failed', rolledBack: true });
    expect(String(r.reason)).toContain('exited with 3');
    expect(String(r.reason)).toContain('config test failed');
    expect(read(`${dir}/site.crt`)).toBe('old certificate\n');
    expect(fs.existsSync(`${dir}/site.key`)).toBe(false); // it did not exist before, so it is removed again
    expect(listing(dir)).toEqual(['site.crt']);
    expect(countLines(log)).toBe(2); // the failed reload, then the reload onto the restored files
  });

  it('authenticates with a password, and a wrong password fails before anything is written', async () => {
    const ok = setup({ auth_method: 'password' }, { password: PASSWORD });
    expect(await ok.host.call('deploy', request(first))).toMatchObject({ status: 'deployed', changed: true });
    const bad = setup({ auth_method: 'password' }, { password: 'wrong' });
    const r = (await bad.host.call('deploy', request(first))) as Record<string, Json>;
    expect(r).toMatchObject({ status: 'failed', rolledBack: false });
    expect(String(r.reason)).toMatch(/authentication/);
    expect(String(r.reason)).not.toContain('wrong');
    expect(listing(bad.dir)).toEqual([]);
  });

  it('authenticates with a key file on the agent (private_key_path)', async () => {
    const keyFile = path.join(h.dir, 'ssh-client.key');
    fs.writeFileSync(keyFile, clientKey.privateKey, { mode: 0o600 });
    const { host, dir } = setup({ private_key_path: keyFile }, {});
    expect(await host.call('deploy', request(first))).toMatchObject({ status: 'deployed', changed: true });
    expect(listing(dir)).toEqual(['site.crt', 'site.key']);
  });

  it('refuses a host whose key does not match the pinned fingerprint, sending nothing', async () => {
    const { host, dir } = setup({ host_key_fingerprint: `SHA256:${'A'.repeat(43)}` });
    const before = server.commands.length;
    const r = (await host.call('deploy', request(first))) as Record<string, Json>;
    expect(r).toMatchObject({ status: 'failed', rolledBack: false });
    expect(String(r.reason)).toContain('host key mismatch');
    expect(String(r.reason)).toContain(server.hostKeyFingerprint);
    expect(listing(dir)).toEqual([]);
    expect(server.commands.length).toBe(before);
    expect(await host.call('validate', {})).toMatchObject({ ok: false });
  });

  it('validate names a missing remote directory', async () => {
    const { host } = setup({ key_path: `${root}/no-such-dir/site.key` });
    expect(await host.call('validate', {})).toEqual({ ok: false, reason: expect.stringContaining('no-such-dir') });
  });
});

describe('ssh target: injection attempts', () => {
  it('quotes every reload argument: metacharacters reach the command as plain text', async () => {
    const dir = path.join(root, `case-${caseNo + 1}`);
    const pwned = path.join(root, 'pwned'); // the server's shell runs in `root`, so a relative touch would land there
    const hostile = [`${dir}/a; touch pwned`, `${dir}/$(touch pwned-subst)`, `${dir}/\`touch pwned-tick\``, `${dir}/it's | touch pwned-pipe && x`];
    const { host } = setup({ reload_command: ['/usr/bin/touch', ...hostile] });
    expect(await host.call('deploy', request(first))).toMatchObject({ status: 'deployed', changed: true });
    for (const name of [pwned, `${pwned}-subst`, `${pwned}-tick`, `${pwned}-pipe`]) expect(fs.existsSync(name)).toBe(false);
    // Each argument arrived whole, as one literal file name.
    expect(listing(dir).filter((f) => !f.startsWith('site.')).sort()).toEqual(hostile.map((h) => h.slice(dir.length + 1)).sort());
  });

  it('the quoting round-trips through a real POSIX shell', () => {
    const args = ['plain', "it's", '$(id)', '`id`', '; rm -rf /', '"double"', '\\back', '*', '', ' spaced  out ', '$HOME', '!bang'];
    const line = quoteArgv(['/usr/bin/printf', '%s\\0', ...args]);
    const out = execFileSync('/bin/sh', ['-c', line]).toString('utf8');
    expect(out.split('\0').slice(0, -1)).toEqual(args);
  });

  it.each<[string, Record<string, unknown>]>([
    ['a shell string as command', { reload_command: '/usr/sbin/nginx -s reload' }],
    ['metacharacters in the command path', { reload_command: ['/usr/sbin/nginx; rm -rf /'] }],
    ['a relative command', { reload_command: ['nginx', '-s', 'reload'] }],
    ['a command with ..', { reload_command: ['/usr/../bin/sh'] }],
    ['a line break in an argument', { reload_command: ['/usr/bin/touch', 'a\nb'] }],
    ['NUL in an argument', { reload_command: ['/usr/bin/touch', 'a\0b'] }],
    ['a relative cert path', { cert_path: 'site.crt' }],
    ['a traversing cert path', { cert_path: '/tmp/../../etc/shadow' }],
    ['a traversing key path', { key_path: '../../etc/shadow' }],
    ['NUL in a path', { key_path: '/tmp/a\0b' }],
    ['a command substitution as host', { host: '$(id)' }],
    ['an option as user', { user: '-oProxyCommand=id' }],
    ['no pinned host key', { host_key_fingerprint: '' }],
  ])('refuses %s before connecting', async (_what, overrides) => {
    const { host, dir } = setup(overrides);
    const before = server.commands.length;
    // Refused by the agent's schema check, or by the plugin's own checks: either way before connecting.
    const outcome = await host.call('deploy', request(first)).then((r) => `failed: ${JSON.stringify(r)}`, (err: Error) => `refused: ${err.message}`);
    expect(outcome).toMatch(/^refused: |^failed: .*"rolledBack":false/);
    expect(listing(dir)).toEqual([]);
    expect(server.commands.length).toBe(before);
  });

  it('uses the OpenSSH sftp-server binary (the test is not running against a stand-in)', () => {
    expect(fs.existsSync(SFTP_SERVER)).toBe(true);
  });
});
