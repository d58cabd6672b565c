import { describe, expect, it } from 'vitest';
import { definePlugin, type ExecResult, type Json } from '../index.js';
import { createTestHost, type TestHostOptions } from '../testing/index.js';
import { deployFiles, restoreSnapshot, type DeployPlan } from './index.js';

const plugin = definePlugin({ kind: 'target', async deploy() { return { status: 'deployed', changed: false }; } });
const grants = { fs: { paths: ['/srv/tls'] }, exec: { commands: ['/usr/sbin/web'] }, kv: true };
const KEY = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKey\n-----END PRIVATE KEY-----\n';

/** A host whose exec fails the commands named in `failing` (by first argument). */
function host(opts: { files?: Record<string, string>; failing?: string[]; kv?: Map<string, Json> } & Partial<TestHostOptions> = {}) {
  const failing = new Set(opts.failing ?? []);
  return createTestHost({
    plugin, grants, files: opts.files ?? {}, kv: opts.kv,
    exec: (_cmd, args): ExecResult => (failing.has(args[0]) ? { exitCode: 1, stdout: '', stderr: `web: ${args[0]} failed: bad config` } : { exitCode: 0, stdout: 'ok', stderr: '' }),
  });
}

const plan = (cert: string, extra: Partial<DeployPlan> = {}): DeployPlan => ({
  files: [{ path: '/srv/tls/site.crt', content: cert }, { path: '/srv/tls/site.key', content: KEY }],
  validate: { argv: ['/usr/sbin/web', 'test'] },
  reload: { argv: ['/usr/sbin/web', 'reload'] },
  ...extra,
});

describe('deployFiles', () => {
  it('writes every file, validates, reloads, and answers changed with a snapshot id', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD CERT\n' } });
    const r = await deployFiles(h.ctx, plan('NEW CERT\n'));
    expect(r).toEqual({ status: 'deployed', changed: true, snapshotId: expect.stringMatching(/^[0-9a-z]{9}-[0-9a-f]{12}$/) });
    expect(h.files.get('/srv/tls/site.crt')).toBe('NEW CERT\n');
    expect(h.files.get('/srv/tls/site.key')).toBe(KEY);
    expect(h.commands.map((c) => c.args[0])).toEqual(['test', 'reload']);
  });

  it('does nothing when every file already has the bytes: changed false, no command', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'SAME\n', '/srv/tls/site.key': KEY } });
    expect(await deployFiles(h.ctx, plan('SAME\n'))).toEqual({ status: 'deployed', changed: false });
    expect(h.commands).toEqual([]);
    expect([...h.kv.keys()]).toEqual([]);
  });

  it('rewrites only the files that differ, but validates and reloads once', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD\n', '/srv/tls/site.key': KEY } });
    const writes: string[] = [];
    const ctx = { ...h.ctx, fs: { ...h.ctx.fs, write: async (p: string, d: string, o?: { mode?: number }) => { writes.push(p); await h.ctx.fs.write(p, d, o); } } };
    expect((await deployFiles(ctx, plan('NEW\n'))).status).toBe('deployed');
    expect(writes).toEqual(['/srv/tls/site.crt']);
    expect(h.commands).toHaveLength(2);
  });

  it('gives new files the key or certificate default mode, and keeps existing files to the host', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD\n' } });
    const modes: Record<string, number | undefined> = {};
    const ctx = { ...h.ctx, fs: { ...h.ctx.fs, write: async (p: string, d: string, o?: { mode?: number }) => { modes[p] = o?.mode; await h.ctx.fs.write(p, d, o); } } };
    await deployFiles(ctx, { files: [{ path: '/srv/tls/site.crt', content: 'C\n' }, { path: '/srv/tls/site.key', content: KEY }, { path: '/srv/tls/chain.pem', content: 'CH\n' }, { path: '/srv/tls/x.pem', content: 'X\n', mode: 0o640 }] });
    expect(modes).toEqual({ '/srv/tls/site.crt': undefined, '/srv/tls/site.key': 0o600, '/srv/tls/chain.pem': 0o644, '/srv/tls/x.pem': 0o640 });
  });

  it('restores the old files (and removes new ones) when validation fails, without reloading', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD CERT\n' }, failing: ['test'] });
    const r = await deployFiles(h.ctx, plan('NEW CERT\n'));
    expect(r).toMatchObject({ status: 'failed', rolledBack: true });
    expect((r as { reason: string }).reason).toMatch(/validate command \/usr\/sbin\/web exited with 1: web: test failed: bad config; the previous files were restored/);
    expect(h.files.get('/srv/tls/site.crt')).toBe('OLD CERT\n');
    expect(h.files.has('/srv/tls/site.key')).toBe(false);
    expect(h.commands.map((c) => c.args[0])).toEqual(['test']);
  });

  it('restores and reloads again when the reload fails', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD CERT\n', '/srv/tls/site.key': 'OLD KEY\n' }, failing: ['reload'] });
    const r = await deployFiles(h.ctx, plan('NEW CERT\n'));
    expect(r).toMatchObject({ status: 'failed', rolledBack: false });
    expect((r as { reason: string }).reason).toMatch(/reload command .* exited with 1.*restoring the previous files also failed: reload command/);
    expect(h.files.get('/srv/tls/site.crt')).toBe('OLD CERT\n');
    expect(h.files.get('/srv/tls/site.key')).toBe('OLD KEY\n');
    expect(h.commands.map((c) => c.args[0])).toEqual(['test', 'reload', 'reload']);
  });

  it('reports rolledBack true when the second reload works', async () => {
    let reloads = 0;
    const h = createTestHost({ plugin, grants, files: { '/srv/tls/site.crt': 'OLD\n' }, exec: (_c, args) => ({ exitCode: args[0] === 'reload' && ++reloads === 1 ? 1 : 0, stdout: '', stderr: '' }) });
    expect(await deployFiles(h.ctx, plan('NEW\n'))).toMatchObject({ status: 'failed', rolledBack: true });
    expect(h.files.get('/srv/tls/site.crt')).toBe('OLD\n');
    expect(reloads).toBe(2);
  });

  it('treats a command that cannot run (refused, timed out) like a failing one', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD\n' } });
    const r = await deployFiles(h.ctx, plan('NEW\n', { validate: { argv: ['/usr/bin/other', '-t'] } }));
    expect(r).toMatchObject({ status: 'failed', rolledBack: true });
    expect((r as { reason: string }).reason).toMatch(/could not run: .*not among the granted commands/);
    expect(h.files.get('/srv/tls/site.crt')).toBe('OLD\n');
  });

  it('refuses a bad plan before touching anything', async () => {
    for (const bad of [
      { files: [] },
      { files: [{ path: 'relative/site.crt', content: 'x' }] },
      { files: [{ path: '/srv/tls/../../etc/passwd', content: 'x' }] },
      { files: [{ path: '/srv/tls/a', content: 'x' }, { path: '/srv/tls/a', content: 'y' }] },
      { files: [{ path: '/srv/tls/a', content: 'x', mode: 0o4755 }] },
      { files: [{ path: '/srv/tls/a', content: 'x' }], reload: { argv: ['/usr/sbin/web -s reload; rm -rf /'] } },
      { files: [{ path: '/srv/tls/a', content: 'x' }], validate: { argv: 'web -t' as unknown as string[] } },
    ] as DeployPlan[]) {
      const h = host({ files: { '/srv/tls/a': 'keep' } });
      const r = await deployFiles(h.ctx, bad);
      expect(r, JSON.stringify(bad)).toMatchObject({ status: 'failed', rolledBack: false });
      expect(h.files.get('/srv/tls/a')).toBe('keep');
      expect(h.commands).toEqual([]);
      expect(h.kv.size).toBe(0);
    }
  });

  it('fails without writing when a path is outside the grants', async () => {
    const h = host();
    const r = await deployFiles(h.ctx, { files: [{ path: '/etc/passwd', content: 'x' }] });
    expect(r).toMatchObject({ status: 'failed', rolledBack: false, reason: expect.stringMatching(/outside the granted paths/) });
    expect(h.files.size).toBe(0);
  });

  it('keeps only the newest snapshots', async () => {
    let t = 1_700_000_000_000;
    const h = createTestHost({ plugin, grants, now: () => (t += 1000), exec: () => ({ exitCode: 0, stdout: '', stderr: '' }) });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(((await deployFiles(h.ctx, plan(`CERT ${i}\n`))) as { snapshotId: string }).snapshotId);
    const kept = new Set([...h.kv.keys()].map((k) => k.split('/')[2]));
    expect([...kept].sort()).toEqual(ids.slice(3).sort());
  });
});

describe('restoreSnapshot', () => {
  it('puts back the files a deploy replaced, removes those it created, and reloads', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD\n' } });
    const r = (await deployFiles(h.ctx, plan('NEW\n'))) as { snapshotId: string };
    h.commands.length = 0;
    expect(await restoreSnapshot(h.ctx, r.snapshotId, { validate: { argv: ['/usr/sbin/web', 'test'] }, reload: { argv: ['/usr/sbin/web', 'reload'] } })).toEqual({ ok: true });
    expect(Object.fromEntries(h.files)).toEqual({ '/srv/tls/site.crt': 'OLD\n' });
    expect(h.commands.map((c) => c.args[0])).toEqual(['test', 'reload']);
  });

  it('restores files larger than one kv value', async () => {
    const big = 'A'.repeat(100_000) + '\n';
    const h = host({ files: { '/srv/tls/site.crt': big } });
    const r = (await deployFiles(h.ctx, plan('NEW\n'))) as { snapshotId: string };
    expect(await restoreSnapshot(h.ctx, r.snapshotId)).toEqual({ ok: true });
    expect(h.files.get('/srv/tls/site.crt')).toBe(big);
  });

  it('does not reload restored files that fail validation', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'OLD\n' } });
    const r = (await deployFiles(h.ctx, plan('NEW\n'))) as { snapshotId: string };
    const h2 = host({ files: Object.fromEntries(h.files), kv: h.kv, failing: ['test'] });
    const out = await restoreSnapshot(h2.ctx, r.snapshotId, { validate: { argv: ['/usr/sbin/web', 'test'] }, reload: { argv: ['/usr/sbin/web', 'reload'] } });
    expect(out).toMatchObject({ ok: false, reason: expect.stringMatching(/do not validate/) });
    expect(h2.commands.map((c) => c.args[0])).toEqual(['test']);
  });

  it('answers a reason for an unknown or malformed snapshot id and touches nothing', async () => {
    const h = host({ files: { '/srv/tls/site.crt': 'KEEP\n' } });
    expect(await restoreSnapshot(h.ctx, '00000000a-000000000000')).toMatchObject({ ok: false, reason: expect.stringMatching(/does not exist/) });
    expect(await restoreSnapshot(h.ctx, '../../x')).toMatchObject({ ok: false, reason: expect.stringMatching(/not a deploy snapshot id/) });
    expect(await restoreSnapshot(h.ctx, '00000000a-000000000000', { reload: { argv: ['web', 'reload'] } })).toMatchObject({ ok: false, reason: expect.stringMatching(/absolute path/) });
    expect(h.files.get('/srv/tls/site.crt')).toBe('KEEP\n');
    expect(h.commands).toEqual([]);
  });
});
