import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { PluginCallError, type BrokerCallContext, type BrokerOp } from '@certctl/kernel';
import { AgentCapabilityBroker } from './agent-broker.js';
import { deriveCallGrants, type CallGrants } from './grants.js';
import { LocalKv } from './local-kv.js';

const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-broker-')));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const keyDir = path.join(root, 'keys');
const stateDir = path.join(root, 'state');
const site = path.join(root, 'site');
fs.mkdirSync(path.join(keyDir, 'mc-a'), { recursive: true });
fs.mkdirSync(path.join(keyDir, 'mc-b'), { recursive: true });
fs.mkdirSync(stateDir);
fs.mkdirSync(site);
const keyFile = path.join(keyDir, 'mc-a', 'k1.key');
fs.writeFileSync(keyFile, 'KEY-A', { mode: 0o600 });
fs.writeFileSync(path.join(keyDir, 'mc-b', 'k2.key'), 'KEY-B', { mode: 0o600 });

function broker(grants: Partial<CallGrants>, allowedPaths: string[] = [root]) {
  const full: CallGrants = { fsWrite: [], fsRead: [], exec: [], httpHosts: [], kv: false, refused: [], ...grants };
  return new AgentCapabilityBroker({ grants: full, secrets: { 'auth.password': 's3cret' }, kv: new LocalKv(path.join(stateDir, 'kv')), log: pino({ level: 'silent' }), protectedDirs: [keyDir, stateDir], allowedPaths });
}
const ctx: BrokerCallContext = { pluginId: 'file-target', instanceId: 'tgt-1', grants: {}, deadline: Date.now() + 60_000 };
const denied = async (p: Promise<unknown>, text: RegExp) => {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PluginCallError);
  expect((err as PluginCallError).code).toBe('capability_denied');
  expect((err as Error).message).toMatch(text);
};

describe('agent capability broker', () => {
  it('writes keep an existing file\'s owner, group and mode; new files get the requested mode', async () => {
    const b = broker({ fsWrite: [site] });
    const existing = path.join(site, 'server.crt');
    fs.writeFileSync(existing, 'OLD');
    fs.chmodSync(existing, 0o640);
    if (process.getuid?.() === 0) fs.chownSync(existing, 1234, 2345);
    await b.handle(ctx, { op: 'fs.write', path: existing, data: 'NEW', mode: 0o600 });
    const st = fs.statSync(existing);
    expect(fs.readFileSync(existing, 'utf8')).toBe('NEW');
    expect(st.mode & 0o777).toBe(0o640);
    if (process.getuid?.() === 0) expect([st.uid, st.gid]).toEqual([1234, 2345]);
    await b.handle(ctx, { op: 'fs.write', path: path.join(site, 'new.pem'), data: 'N', mode: 0o644 });
    expect(fs.statSync(path.join(site, 'new.pem')).mode & 0o777).toBe(0o644);
  });

  it('removes granted files (missing is fine), reads a missing one as ENOENT, refuses directories', async () => {
    const b = broker({ fsWrite: [site] });
    fs.writeFileSync(path.join(site, 'gone.pem'), 'x');
    expect(await b.handle(ctx, { op: 'fs.remove', path: path.join(site, 'gone.pem') })).toBeNull();
    expect(fs.existsSync(path.join(site, 'gone.pem'))).toBe(false);
    expect(await b.handle(ctx, { op: 'fs.remove', path: path.join(site, 'gone.pem') })).toBeNull();
    const err = await b.handle(ctx, { op: 'fs.read', path: path.join(site, 'gone.pem') }).catch((e: NodeJS.ErrnoException) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    fs.mkdirSync(path.join(site, 'sub'), { recursive: true });
    await denied(b.handle(ctx, { op: 'fs.remove', path: path.join(site, 'sub') }), /directory/);
    // Outside the grant, a missing file is a refusal, not ENOENT: nothing can be probed.
    await denied(b.handle(ctx, { op: 'fs.read', path: path.join(root, 'elsewhere.pem') }), /outside the granted paths/);
  });

  it('the key file is readable, never writable; other keys and the state directory stay out of reach even under a broad grant', async () => {
    const b = broker({ fsWrite: [root], fsRead: [keyFile] });
    expect(await b.handle(ctx, { op: 'fs.read', path: keyFile })).toBe('KEY-A');
    await denied(b.handle(ctx, { op: 'fs.write', path: keyFile, data: 'X' }), /key or state directory/);
    await denied(b.handle(ctx, { op: 'fs.read', path: path.join(keyDir, 'mc-b', 'k2.key') }), /key or state directory/);
    await denied(b.handle(ctx, { op: 'fs.write', path: path.join(stateDir, 'credentials.json'), data: '{}' }), /key or state directory/);
    await denied(b.handle(ctx, { op: 'fs.remove', path: keyFile }), /key or state directory/);
    expect(fs.readFileSync(keyFile, 'utf8')).toBe('KEY-A');
    // Without a write grant, the read-only key grant does not allow writing anywhere.
    await denied(broker({ fsRead: [keyFile] }).handle(ctx, { op: 'fs.write', path: path.join(site, 'x'), data: 'x' }), /no writable paths/);
  });

  it('checks the resolved path against CERTCTL_AGENT_ALLOWED_PATHS again, so a symlink inside cannot lead out', async () => {
    const outside = path.join(root, 'outside.txt');
    fs.writeFileSync(outside, 'precious');
    fs.symlinkSync(outside, path.join(site, 'link.pem'));
    // The grant is the link itself (as a control plane could name it); the allowlist is the site folder.
    const b = broker({ fsWrite: [path.join(site, 'link.pem')] }, [site]);
    await denied(b.handle(ctx, { op: 'fs.write', path: path.join(site, 'link.pem'), data: 'owned' }), /outside the agent's allowed paths \(CERTCTL_AGENT_ALLOWED_PATHS\)/);
    expect(fs.readFileSync(outside, 'utf8')).toBe('precious');
    expect(await broker({ fsWrite: [site], fsRead: [keyFile] }, [site]).handle(ctx, { op: 'fs.read', path: keyFile })).toBe('KEY-A');
  });

  it('secrets come from the work item\'s config; kv only when granted; exec only for granted commands; no CA or events', async () => {
    const b = broker({ kv: true, exec: [{ command: '/bin/true', args: null }] });
    expect(await b.handle(ctx, { op: 'secrets.get', path: 'auth.password' })).toBe('s3cret');
    expect(await b.handle(ctx, { op: 'secrets.get', path: 'toString' })).toBeNull();
    await b.handle(ctx, { op: 'kv.set', key: 'snap', value: { a: 1 } });
    expect(await b.handle(ctx, { op: 'kv.get', key: 'snap' })).toEqual({ value: { a: 1 } });
    await denied(broker({}).handle(ctx, { op: 'kv.get', key: 'snap' }), /capability kv/);
    expect(await b.handle(ctx, { op: 'exec.run', command: '/bin/true', args: [] })).toMatchObject({ exitCode: 0 });
    await denied(b.handle(ctx, { op: 'exec.run', command: '/bin/sh', args: ['-c', 'id'] }), /not among the granted commands/);
    // A granted command with other arguments than its granted lists: refused as capability_denied.
    const reload = broker({ exec: [{ command: '/bin/echo', args: [['reload', 'nginx']] }] });
    expect(await reload.handle(ctx, { op: 'exec.run', command: '/bin/echo', args: ['reload', 'nginx'] })).toMatchObject({ exitCode: 0, stdout: 'reload nginx\n' });
    await denied(reload.handle(ctx, { op: 'exec.run', command: '/bin/echo', args: ['stop', 'nginx'] }), /not granted with these arguments/);
    await denied(b.handle(ctx, { op: 'ca.sign', request: {} }), /control plane/);
    await denied(b.handle(ctx, { op: 'events.emit', type: 'x', data: {} }), /no event stream/);
    await denied(b.handle(ctx, { op: 'http.fetch', request: { url: 'https://example.com' } }), /no hosts/);
    await denied(b.handle(ctx, { op: 'nope' } as unknown as BrokerOp), /unknown host call/);
  });

  it('path arguments of a command lie in the call\'s granted paths, by their real path too', async () => {
    const out = path.join(site, 'bundle.p12');
    const victim = path.join(root, 'victim.txt');
    fs.writeFileSync(victim, 'precious');
    fs.symlinkSync(victim, path.join(site, 'sneaky.p12'));
    const b = broker({ fsWrite: [site], fsRead: [keyFile], exec: [{ command: '/bin/echo', args: [['-inkey', { path: 'read' }, '-out', { path: 'write' }]] }] }, [site]);
    expect(await b.handle(ctx, { op: 'exec.run', command: '/bin/echo', args: ['-inkey', keyFile, '-out', out] })).toMatchObject({ exitCode: 0 });
    await denied(b.handle(ctx, { op: 'exec.run', command: '/bin/echo', args: ['-inkey', keyFile, '-out', victim] }), /not granted with these arguments/);
    await denied(b.handle(ctx, { op: 'exec.run', command: '/bin/echo', args: ['-inkey', keyFile, '-out', keyFile] }), /not granted with these arguments/);
    await denied(b.handle(ctx, { op: 'exec.run', command: '/bin/echo', args: ['-inkey', path.join(keyDir, 'mc-b', 'k2.key'), '-out', out] }), /not granted with these arguments/);
    // Inside the grant as written, outside by its real path: refused before the command starts.
    await denied(b.handle(ctx, { op: 'exec.run', command: '/bin/echo', args: ['-inkey', keyFile, '-out', path.join(site, 'sneaky.p12')] }), /outside the granted paths/);
  });

  it('refuses always-refused paths on the real path, even inside a granted and allowed folder', async () => {
    const b = broker({ fsWrite: [root] }, [root]);
    fs.mkdirSync(path.join(site, '.ssh'), { recursive: true });
    await denied(b.handle(ctx, { op: 'fs.write', path: path.join(site, '.ssh', 'authorized_keys'), data: 'ssh-ed25519 AAAA attacker' }), /\.ssh directory/);
    fs.symlinkSync(path.join(site, '.ssh'), path.join(site, 'innocent'));
    await denied(b.handle(ctx, { op: 'fs.write', path: path.join(site, 'innocent', 'authorized_keys'), data: 'x' }), /\.ssh directory/);
    expect(fs.existsSync(path.join(site, '.ssh', 'authorized_keys'))).toBe(false);
  });

  it('http.fetch never reaches cloud metadata through a config URL', async () => {
    const schema = { type: 'object', properties: { admin_url: { type: 'string', 'x-certctl-url': true } } };
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/']) {
      const g = deriveCallGrants({ manifest: {}, configSchema: schema, config: { admin_url: url }, policy: { allowedPaths: [root], allowedCommands: [], protectedDirs: [] } });
      await denied(broker(g).handle(ctx, { op: 'http.fetch', request: { url } }), /no hosts are granted/);
      // Next to an ordinary granted host, the metadata address is still out of reach.
      const mixed = deriveCallGrants({ manifest: { http: { hosts: ['http://127.0.0.1:9'] } }, configSchema: schema, config: { admin_url: url }, policy: { allowedPaths: [root], allowedCommands: [], protectedDirs: [] } });
      await denied(broker(mixed).handle(ctx, { op: 'http.fetch', request: { url } }), /not among the plugin's granted hosts|not granted/);
    }
  });
});
