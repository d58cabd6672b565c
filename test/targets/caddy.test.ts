import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentHarness, snapshotDir, type AgentHarness } from './support/agent-harness.js';
import { startFakeCaddyAdmin, type FakeCaddyAdmin } from './support/fake-caddy-admin.js';

/**
 * The Caddy target through the agent's plugin host, in both modes. Caddy is not
 * installed here: api mode talks real HTTP to a loopback stand-in that follows
 * Caddy's documented admin API (see support/fake-caddy-admin.ts).
 */
let h: AgentHarness;
let caddy: FakeCaddyAdmin;
beforeAll(async () => {
  h = createAgentHarness('caddy');
  caddy = await startFakeCaddyAdmin();
});
afterAll(async () => {
  await caddy?.close();
  h?.cleanup();
});

type Entry = { '@id': string; certificate: string; key: string; tags: string[] };
const loadPem = () => ((caddy.config() as { apps?: { tls?: { certificates?: { load_pem?: Entry[] } } } }).apps?.tls?.certificates?.load_pem ?? []);

describe('caddy target, api mode', () => {
  const config = () => ({ mode: 'api', admin_url: caddy.url });

  it('loads the PEMs as one load_pem entry with a stable @id, replaces it in place, and rolls back', async () => {
    const first = h.pki.issue('caddy.certctl.test');
    const r1 = await h.deploy('caddy', config(), first, { id: 'tgt-caddy-api' });
    expect(r1).toEqual({ status: 'deployed', changed: true, snapshotId: expect.any(String) });
    expect(loadPem()).toEqual([{ '@id': 'certctl_tgt-caddy-api', certificate: `${first.certificatePem.trim()}\n${first.chainPem[0].trim()}\n`, key: `${first.keyPem.trim()}\n`, tags: ['certctl', 'certctl:mc-caddy'] }]);
    // The path did not exist: created with PUT (POST would have set an object where Caddy wants an array).
    expect(caddy.changes).toEqual(['PUT /config/apps/tls/certificates/load_pem']);

    expect(await h.deploy('caddy', config(), first, { id: 'tgt-caddy-api' })).toEqual({ status: 'deployed', changed: false });
    expect(caddy.changes).toHaveLength(1);

    const second = h.pki.issue('caddy.certctl.test');
    const r2 = (await h.deploy('caddy', config(), second, { id: 'tgt-caddy-api' })) as { snapshotId: string };
    expect(caddy.changes.at(-1)).toBe('PATCH /id/certctl_tgt-caddy-api');
    expect(loadPem()).toHaveLength(1);
    expect(await h.call('caddy', config(), 'verify', { fingerprintSha256: second.fingerprintSha256 }, 'tgt-caddy-api')).toMatchObject({ status: 'success' });

    expect(await h.call('caddy', config(), 'rollback', { snapshotId: r2.snapshotId }, 'tgt-caddy-api')).toEqual({ ok: true });
    expect(loadPem()[0].certificate).toContain(first.certificatePem.trim());
    // Rolling back the first deploy removes certctl's entry again.
    expect(await h.call('caddy', config(), 'rollback', { snapshotId: (r1 as { snapshotId: string }).snapshotId }, 'tgt-caddy-api')).toEqual({ ok: true });
    expect(loadPem()).toEqual([]);
  });

  it('appends to an existing load_pem list, leaving other entries alone', async () => {
    const other = h.pki.issue('other.certctl.test');
    const before = loadPem().length;
    const r = await h.deploy('caddy', { ...config(), object_id: 'certctl_second' }, other);
    expect(r).toMatchObject({ status: 'deployed', changed: true });
    expect(caddy.changes.at(-1)).toBe('POST /config/apps/tls/certificates/load_pem');
    expect(loadPem().map((e) => e['@id'])).toContain('certctl_second');
    expect(loadPem()).toHaveLength(before + 1);
  });

  it('a change Caddy cannot load leaves its config as it was', async () => {
    const before = caddy.config();
    caddy.failLoads = true;
    try {
      const r = await h.deploy('caddy', { ...config(), object_id: 'certctl_second' }, h.pki.issue('other.certctl.test'));
      expect(r).toMatchObject({ status: 'failed', rolledBack: true, reason: expect.stringContaining('Caddy answered 400: loading new config') });
    } finally {
      caddy.failLoads = false;
    }
    expect(caddy.config()).toEqual(before);
  });

  it('refuses a key that does not belong to the certificate before calling Caddy', async () => {
    const changes = caddy.changes.length;
    const r = await h.deploy('caddy', config(), h.pki.issue('caddy.certctl.test'), { keyPem: h.pki.issue('x.certctl.test').keyPem });
    expect(r).toMatchObject({ status: 'failed', rolledBack: false, reason: expect.stringContaining('does not belong') });
    expect(caddy.changes.length).toBe(changes);
  });

  it.each([
    ['a cloud metadata address', 'http://169.254.169.254'],
    ['a URL with a path', 'http://127.0.0.1:2019/config/../load'],
    ['a URL with credentials', 'http://admin:secret@127.0.0.1:2019'],
    ['a non-http scheme', 'file:///etc/caddy/autosave.json'],
  ])('refuses %s as admin_url', async (_what, url) => {
    const changes = caddy.changes.length;
    const outcome = await h.outcome('caddy', { mode: 'api', admin_url: url }, h.pki.issue('caddy.certctl.test'));
    expect(outcome).toMatch(/^(failed|refused): /);
    expect(caddy.changes.length).toBe(changes);
  });
});

describe('caddy target, file mode', () => {
  it('writes the pair, runs the reload, and the same certificate again changes nothing', async () => {
    const dir = h.mkdir('file');
    const log = path.join(h.dir, 'caddy-reload.log');
    const config = { mode: 'file', cert_path: path.join(dir, 'site.crt'), key_path: path.join(dir, 'site.key'), reload_command: ['/bin/sh', '-c', 'echo reload >> "$0"', log] };
    const cert = h.pki.issue('caddy.certctl.test');
    expect(await h.deploy('caddy', config, cert)).toMatchObject({ status: 'deployed', changed: true });
    expect(fs.readFileSync(path.join(dir, 'site.crt'), 'utf8')).toContain(cert.certificatePem.trim());
    expect(fs.statSync(path.join(dir, 'site.key')).mode & 0o777).toBe(0o600);
    expect(await h.deploy('caddy', config, cert)).toEqual({ status: 'deployed', changed: false });
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(await h.call('caddy', config, 'verify', { fingerprintSha256: cert.fingerprintSha256 })).toMatchObject({ status: 'success' });
  });

  it.each([
    ['a ".." cert path', { cert_path: '/etc/caddy/../../etc/shadow' }],
    ['a missing key path', { key_path: undefined }],
    ['a shell string as reload command', { reload_command: '/usr/bin/caddy reload; id' }],
    ['an unknown mode', { mode: 'shell' }],
  ])('refuses %s before writing anything', async (_what, over) => {
    const dir = h.mkdir(`bad-${Math.random().toString(36).slice(2, 8)}`);
    const outcome = await h.outcome('caddy', { mode: 'file', cert_path: path.join(dir, 'site.crt'), key_path: path.join(dir, 'site.key'), ...over }, h.pki.issue('caddy.certctl.test'));
    expect(outcome).toMatch(/^(failed|refused): /);
    expect(snapshotDir(dir)).toEqual({});
  });
});
