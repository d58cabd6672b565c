import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeployResult, Json } from '@certctl/sdk';
import { createRealAgent, type RealAgent } from '../support/real-agent-context.js';
import { makeTestPki, type TestCert } from './support/certs.js';

/**
 * The Java keystore target through the agent's own plugin host, with the real
 * openssl and keytool: every claim is checked by listing the keystore with
 * keytool itself.
 */
const PASSWORD = 'keystore-secret-1';
// keytool starts a JVM per run; these flags only make the short runs start faster.
const FAST_JVM = ['-J-XX:TieredStopAtLevel=1', '-J-XX:+UseSerialGC'];
let dir: string;
let agent: RealAgent;
let pki: ReturnType<typeof makeTestPki>;
let argvLog: string;
let wrapper: string;
let caseNo = 0;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-jks-'));
  agent = createRealAgent(dir);
  pki = makeTestPki();
  // Runs the real tool after recording its argument list, so the test can show the password never appears there.
  argvLog = path.join(dir, 'argv.log');
  wrapper = path.join(dir, 'log-argv.sh');
  fs.writeFileSync(wrapper, `#!/bin/sh\ntool="$1"; shift\nprintf '%s\\n' "$tool $*" >> ${argvLog}\nexec "$tool" "$@"\n`, { mode: 0o755 });
});
afterAll(() => {
  pki?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function newCase(over: Record<string, unknown> = {}) {
  const root = path.join(dir, `case-${++caseNo}`);
  const work = path.join(root, 'work');
  fs.mkdirSync(work, { recursive: true, mode: 0o700 });
  const keystore = path.join(root, 'app', 'keystore.jks');
  fs.mkdirSync(path.dirname(keystore));
  const config = {
    keystore_path: keystore, keystore_password: PASSWORD, keystore_type: 'JKS', alias: 'server', work_dir: work,
    keytool_command: ['/bin/sh', wrapper, '/usr/bin/keytool', ...FAST_JVM], openssl_command: ['/bin/sh', wrapper, '/usr/bin/openssl'], ...over,
  };
  const target = (o: Record<string, unknown> = {}) => ({ id: `tgt-jks-${caseNo}`, type: 'jks', config: { ...config, ...o } });
  const deploy = (cert: TestCert, o: Record<string, unknown> = {}) => {
    const keyPath = agent.storeKey(`jks-${cert.fingerprintSha256.slice(0, 12)}`, cert.keyPem);
    return agent.call<DeployResult>(target(o), 'deploy', { certificateId: 'mc-jks', certificatePem: cert.certificatePem, chainPem: cert.chainPem, keyPath, fingerprintSha256: cert.fingerprintSha256 } as unknown as Json, { keyPath, timeoutMs: 60_000 });
  };
  return { root, work, keystore, target, deploy, storetype: String(config.keystore_type) };
}

/** `keytool -list -v` of the alias, as an operator would run it. */
function listAlias(keystore: string, storetype: string, password = PASSWORD): string {
  return execFileSync('/usr/bin/keytool', [...FAST_JVM, '-list', '-v', '-alias', 'server', '-keystore', keystore, '-storetype', storetype, '-storepass', password], { encoding: 'utf8' });
}
const sha256Line = (listing: string) => /SHA256: ([0-9A-F:]+)/.exec(listing)?.[1].replace(/:/g, '').toLowerCase();
const fileHash = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

describe('java keystore target with the real keytool', () => {
  let main: ReturnType<typeof newCase>;
  let first: TestCert;

  it('imports key and chain under the alias, then is idempotent, replaces, and rolls back', async () => {
    const c = (main = newCase());
    first = pki.issue('app.certctl.test');
    const r1 = await c.deploy(first);
    expect(r1).toEqual({ status: 'deployed', changed: true, snapshotId: expect.any(String) });
    const listing = listAlias(c.keystore, 'JKS');
    expect(listing).toContain('Alias name: server');
    expect(listing).toContain('Entry type: PrivateKeyEntry');
    expect(listing).toContain('Certificate chain length: 2');
    expect(sha256Line(listing)).toBe(first.fingerprintSha256);
    expect(fs.readdirSync(c.work)).toEqual([]); // no password file or bundle left behind

    const before = fileHash(c.keystore);
    expect(await c.deploy(first)).toEqual({ status: 'deployed', changed: false });
    expect(fileHash(c.keystore)).toBe(before);

    const second = pki.issue('app.certctl.test');
    const r2 = (await c.deploy(second)) as { status: string; snapshotId: string };
    expect(r2.status).toBe('deployed');
    expect(sha256Line(listAlias(c.keystore, 'JKS'))).toBe(second.fingerprintSha256);
    expect(await agent.call(c.target(), 'verify', { fingerprintSha256: second.fingerprintSha256 })).toMatchObject({ status: 'success' });

    expect(await agent.call(c.target(), 'rollback', { snapshotId: r2.snapshotId }, { timeoutMs: 60_000 })).toEqual({ ok: true });
    expect(sha256Line(listAlias(c.keystore, 'JKS'))).toBe(first.fingerprintSha256);
    expect(await agent.call(c.target(), 'verify', { fingerprintSha256: second.fingerprintSha256 })).toMatchObject({ status: 'failed', observedFingerprintSha256: first.fingerprintSha256 });

    // The password went through -storepass:file / -passout file:, never as an argument.
    const argv = fs.readFileSync(argvLog, 'utf8');
    expect(argv).toContain('-storepass:file');
    expect(argv).toContain('pkcs12 -export');
    expect(argv).not.toContain(PASSWORD);
  });

  it('a wrong password fails cleanly: the keystore is untouched', async () => {
    const c = main;
    const before = fileHash(c.keystore);
    const r = await c.deploy(pki.issue('app.certctl.test'), { keystore_password: 'not-the-password' });
    expect(r).toMatchObject({ status: 'failed', rolledBack: false, reason: expect.stringMatching(/cannot open .* with the configured password; nothing was changed/) });
    expect(JSON.stringify(r)).not.toContain('not-the-password');
    expect(fileHash(c.keystore)).toBe(before);
    expect(sha256Line(listAlias(c.keystore, 'JKS'))).toBe(first.fingerprintSha256);
    expect(fs.readdirSync(c.work).filter((f) => !f.endsWith('.backup.p12'))).toEqual([]);
  });

  it('a failing reload restores the previous entry', async () => {
    const c = main;
    const r = await c.deploy(pki.issue('app.certctl.test'), { reload_command: ['/usr/bin/false'] });
    expect(r).toMatchObject({ status: 'failed', rolledBack: true, reason: expect.stringContaining('reload command /usr/bin/false exited with 1') });
    expect(sha256Line(listAlias(c.keystore, 'JKS'))).toBe(first.fingerprintSha256);
    // The failed deploy's backup went with it (and the earlier snapshot's went with its rollback).
    expect(fs.readdirSync(c.work)).toEqual([]);
  });

  it('writes a PKCS12 keystore when asked', async () => {
    const c = newCase({ keystore_type: 'PKCS12', keystore_path: undefined });
    const cert = pki.issue('app.certctl.test');
    const keystore = path.join(c.root, 'app', 'keystore.p12');
    expect(await c.deploy(cert, { keystore_path: keystore })).toMatchObject({ status: 'deployed', changed: true });
    expect(sha256Line(listAlias(keystore, 'PKCS12'))).toBe(cert.fingerprintSha256);
    expect(execFileSync('/usr/bin/openssl', ['pkcs12', '-in', keystore, '-nokeys', '-passin', `pass:${PASSWORD}`], { encoding: 'utf8' })).toContain('BEGIN CERTIFICATE');
  });

  it.each([
    ['a traversing keystore path', { keystore_path: '/tmp/../../etc/shadow' }],
    ['a relative keystore path', { keystore_path: 'keystore.jks' }],
    ['an option as alias', { alias: '-storepass' }],
    ['a shell string as reload command', { reload_command: '/usr/bin/systemctl restart app; rm -rf /' }],
    ['metacharacters in the keytool path', { keytool_command: ['/usr/bin/keytool;id'] }],
    ['NUL in the work dir', { work_dir: '/tmp/a\0b' }],
  ])('refuses %s before running anything', async (_what, over) => {
    const c = newCase();
    const before = fs.existsSync(argvLog) ? fs.readFileSync(argvLog, 'utf8') : '';
    const outcome = await c.deploy(pki.issue('app.certctl.test'), over).then((r) => r.status, (err: Error) => `refused: ${err.message}`);
    expect(outcome).toMatch(/^(failed|refused: )/);
    expect(fs.existsSync(c.keystore)).toBe(false);
    expect(fs.existsSync(argvLog) ? fs.readFileSync(argvLog, 'utf8') : '').toBe(before);
  });
});
