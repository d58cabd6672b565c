import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyEndpointSchema } from '@certctl/sdk/deploy';
import { createAgentHarness, snapshotDir, type AgentHarness } from './support/agent-harness.js';

/**
 * Traefik's file provider target through the agent's plugin host. Traefik is not
 * installed here; the dynamic configuration file is read back with independent
 * YAML and TOML parsers (Debian's python3-yaml and Python's tomllib).
 */
let h: AgentHarness;
beforeAll(() => { h = createAgentHarness('traefik'); });
afterAll(() => h?.cleanup());

/** Parses a YAML or TOML file with /usr/bin/python3, answering JSON. */
function parse(file: string, format: 'yaml' | 'toml'): unknown {
  const script = format === 'yaml'
    ? 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))'
    : 'import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],"rb"))))';
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8' }));
}

describe('traefik target', () => {
  it('writes the pair and a YAML dynamic configuration naming it; idempotent; rollback restores', async () => {
    const dir = h.mkdir('yaml');
    const config = { cert_dir: dir, cert_filename: 'site.pem', key_filename: 'site.key' };
    const first = h.pki.issue('traefik.certctl.test');
    const r1 = await h.deploy('traefik', config, first);
    expect(r1).toEqual({ status: 'deployed', changed: true, snapshotId: expect.any(String) });
    expect(fs.readdirSync(dir).sort()).toEqual(['certctl-tls.yml', 'site.key', 'site.pem']);
    expect(fs.readFileSync(path.join(dir, 'site.pem'), 'utf8')).toBe(`${first.certificatePem.trim()}\n${first.chainPem[0].trim()}\n`);
    expect(fs.statSync(path.join(dir, 'site.key')).mode & 0o777).toBe(0o600);
    expect(parse(path.join(dir, 'certctl-tls.yml'), 'yaml')).toEqual({ tls: { certificates: [{ certFile: path.join(dir, 'site.pem'), keyFile: path.join(dir, 'site.key') }] } });

    const after = snapshotDir(dir);
    expect(await h.deploy('traefik', config, first)).toEqual({ status: 'deployed', changed: false });
    const second = h.pki.issue('traefik.certctl.test');
    const r2 = (await h.deploy('traefik', config, second)) as { snapshotId: string };
    expect(fs.readFileSync(path.join(dir, 'site.pem'), 'utf8')).toContain(second.certificatePem.trim());
    expect(await h.call('traefik', config, 'rollback', { snapshotId: r2.snapshotId })).toEqual({ ok: true });
    expect(snapshotDir(dir)).toEqual(after);
  });

  it('writes TOML when asked', async () => {
    const dir = h.mkdir('toml');
    const r = await h.deploy('traefik', { cert_dir: dir, dynamic_config: 'toml' }, h.pki.issue('traefik.certctl.test'));
    expect(r).toMatchObject({ status: 'deployed', changed: true });
    expect(parse(path.join(dir, 'certctl-tls.toml'), 'toml')).toEqual({ tls: { certificates: [{ certFile: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem') }] } });
  });

  it('a failing validate command puts the previous files back', async () => {
    const dir = h.mkdir('validate');
    expect(await h.deploy('traefik', { cert_dir: dir }, h.pki.issue('traefik.certctl.test'))).toMatchObject({ status: 'deployed' });
    const before = snapshotDir(dir);
    const r = await h.deploy('traefik', { cert_dir: dir, validate_command: ['/usr/bin/false'] }, h.pki.issue('traefik.certctl.test'));
    expect(r).toMatchObject({ status: 'failed', rolledBack: true });
    expect(snapshotDir(dir)).toEqual(before);
  });

  it.each([
    ['a file name that climbs out', { cert_filename: '../../etc/passwd' }],
    ['a file name with a slash', { key_filename: 'sub/key.pem' }],
    ['a relative cert_dir', { cert_dir: 'etc/traefik' }],
    ['a cert_dir with ..', { cert_dir: '/etc/traefik/../../root' }],
    ['a shell string as reload command', { reload_command: '/usr/bin/kill -HUP 1; rm -rf /' }],
    ['a command with metacharacters', { reload_command: ['/usr/bin/touch$(id)'] }],
    ['the same name twice', { cert_filename: 'x.pem', key_filename: 'x.pem' }],
  ])('refuses %s before writing anything', async (_what, over) => {
    const dir = h.mkdir(`bad-${Math.random().toString(36).slice(2, 8)}`);
    const outcome = await h.outcome('traefik', { cert_dir: dir, ...over }, h.pki.issue('traefik.certctl.test'));
    expect(outcome).toMatch(/^(failed|refused): /);
    expect(snapshotDir(dir)).toEqual({});
  });

  it('declares the shared verify block and grants only cert_dir', () => {
    const manifest = JSON.parse(fs.readFileSync(new URL('../../plugins/targets/traefik/package.json', import.meta.url), 'utf8')).certctl;
    expect(manifest.configSchema.properties.verify).toEqual(verifyEndpointSchema);
    expect(manifest.configSchema.properties.cert_dir['x-certctl-path']).toBe(true);
  });
});
