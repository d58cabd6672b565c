import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentHarness, snapshotDir, type AgentHarness } from './support/agent-harness.js';

/**
 * The Envoy target through the agent's plugin host: certificate chain, key, CA
 * chain and a file-based SDS document (Envoy is not installed here; the SDS
 * shape is the v3 Secret resource a path_config_source reads).
 */
let h: AgentHarness;
beforeAll(() => { h = createAgentHarness('envoy'); });
afterAll(() => h?.cleanup());

const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

describe('envoy target', () => {
  it('writes chain, key, CA chain and an SDS secret naming them; idempotent; rollback restores', async () => {
    const dir = h.mkdir('sds');
    const config = { cert_dir: dir, chain_filename: 'ca.pem', sds_config: { filename: 'sds.json', secret_name: 'edge_cert' } };
    const first = h.pki.issue('envoy.certctl.test');
    const r1 = await h.deploy('envoy', config, first);
    expect(r1).toEqual({ status: 'deployed', changed: true, snapshotId: expect.any(String) });
    expect(fs.readdirSync(dir).sort()).toEqual(['ca.pem', 'cert.pem', 'key.pem', 'sds.json']);
    expect(fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8')).toBe(`${first.certificatePem.trim()}\n${first.chainPem[0].trim()}\n`);
    expect(fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8')).toBe(`${first.chainPem[0].trim()}\n`);
    expect(fs.statSync(path.join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'sds.json'), 'utf8'))).toEqual({
      resources: [{
        '@type': SECRET_TYPE, name: 'edge_cert',
        tls_certificate: { certificate_chain: { filename: path.join(dir, 'cert.pem') }, private_key: { filename: path.join(dir, 'key.pem') } },
      }],
    });

    const after = snapshotDir(dir);
    expect(await h.deploy('envoy', config, first)).toEqual({ status: 'deployed', changed: false });
    const r2 = (await h.deploy('envoy', config, h.pki.issue('envoy.certctl.test'))) as { status: string; snapshotId: string };
    expect(r2.status).toBe('deployed');
    // The SDS document names the same files, so only the certificate and key changed.
    expect(snapshotDir(dir)['sds.json']).toBe(after['sds.json']);
    expect(await h.call('envoy', config, 'rollback', { snapshotId: r2.snapshotId })).toEqual({ ok: true });
    expect(snapshotDir(dir)).toEqual(after);
  });

  it('writes no SDS file without sds_config', async () => {
    const dir = h.mkdir('plain');
    expect(await h.deploy('envoy', { cert_dir: dir }, h.pki.issue('envoy.certctl.test'))).toMatchObject({ status: 'deployed' });
    expect(fs.readdirSync(dir).sort()).toEqual(['cert.pem', 'key.pem']);
  });

  it.each([
    ['a chain file name that climbs out', { chain_filename: '../../../etc/ssl/ca.pem' }],
    ['an SDS file name that climbs out', { sds_config: { filename: '../envoy.yaml' } }],
    ['an absolute key file name', { key_filename: '/etc/shadow' }],
    ['a cert_dir with ..', { cert_dir: '/etc/envoy/../../root' }],
    ['a relative cert_dir', { cert_dir: 'certs' }],
    ['NUL in a file name', { cert_filename: 'a\0b' }],
    ['a secret name with quotes', { sds_config: { secret_name: 'x", "y' } }],
    ['a shell string as validate command', { validate_command: '/usr/local/bin/envoy --mode validate; id' }],
  ])('refuses %s before writing anything', async (_what, over) => {
    const dir = h.mkdir(`bad-${Math.random().toString(36).slice(2, 8)}`);
    const outcome = await h.outcome('envoy', { cert_dir: dir, ...over }, h.pki.issue('envoy.certctl.test'));
    expect(outcome).toMatch(/^(failed|refused): /);
    expect(snapshotDir(dir)).toEqual({});
  });
});
