import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateMatchesCsr, TAMPERED_CSR_PEM, TEST_CSR_PEM, TEST_CSR_SUBJECT } from '@certctl/sdk/testing';
import { PluginCallError } from '../../kernel/src/plugins/host/contracts.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { startFakeCa, type FakeCa } from './custom-ca-fake-ca.js';

const run = promisify(execFile);
const EXAMPLE_DIR = fileURLToPath(new URL('../../sdk/examples/custom-ca/', import.meta.url));
const TOKEN = 'e2e-ca-token-5b0f3d21';

/**
 * Done-criterion (1) of the plugin-host issue: the example third-party issuer,
 * bundled with esbuild and packed with npm pack, installed through the API into a
 * running kernel, granted, configured through its schema, issues a certificate by
 * calling a fake CA service on loopback, from inside the isolate sandbox.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('custom-CA example: pack, install, grant, configure, issue', () => {
  let t: TestKernel;
  let ca: FakeCa;
  let work: string;
  let tgz: Buffer;
  const issueRequest = { certificateId: 'mc-e2e', csrPem: TEST_CSR_PEM, ...TEST_CSR_SUBJECT, profile: { id: null, maxTtlSeconds: null, ekus: ['serverAuth'] } };

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-custom-ca-e2e-'));
    // Build and pack a copy, so parallel runs never write into the example's own folder.
    const pkgDir = path.join(work, 'pkg');
    fs.mkdirSync(pkgDir);
    // @ts-expect-error build.mjs is plain JS without types
    const { bundle } = (await import('../../sdk/examples/custom-ca/build.mjs')) as { bundle: (o: { outfile: string }) => Promise<unknown> };
    await bundle({ outfile: path.join(pkgDir, 'dist', 'plugin.js') });
    for (const f of ['package.json', 'README.md']) fs.copyFileSync(path.join(EXAMPLE_DIR, f), path.join(pkgDir, f));
    const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: pkgDir });
    const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    expect(packed[0].files.map((f) => f.path).sort()).toEqual(['README.md', 'dist/plugin.js', 'package.json']);
    tgz = fs.readFileSync(path.join(work, packed[0].filename));

    ca = await startFakeCa({ token: TOKEN });
    t = await startTestKernel();
  });
  afterAll(async () => {
    await t?.stop();
    await ca?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('installs the packed plugin as pending_grant, asking only for loopback HTTP', async () => {
    const res = await t.api.request('POST', '/api/v1/plugins', { rawBody: tgz, headers: { 'content-type': 'application/gzip' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ id: 'custom-ca', kind: 'issuer', package_name: 'certctl-plugin-custom-ca', status: 'pending_grant', requested_capabilities: { http: { hosts: ['http://127.0.0.1'] } } });
    // Nothing runs before the grant.
    await expect(t.kernel.pluginHost.call('custom-ca', null, 'issue', issueRequest)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('is granted, then configured through its schema (the token is a secret)', async () => {
    const granted = await t.api.post('/api/v1/plugins/custom-ca/grant', { capabilities: { http: { hosts: ['http://127.0.0.1'] } } });
    expect(granted.body).toMatchObject({ status: 'enabled' });
    const schema = await t.api.get('/api/v1/plugins/custom-ca/schema');
    expect(schema.body).toMatchObject({ secret_fields: ['token'], config_schema: { required: ['url', 'token'] } });
    const bad = await t.api.post('/api/v1/issuers', { id: 'iss-custom', name: 'Custom CA', type: 'custom-ca', config: { url: 'not a url', token: 'short' } });
    expect(bad.status).toBe(400);
    const created = await t.api.post('/api/v1/issuers', { id: 'iss-custom', name: 'Custom CA', type: 'custom-ca', config: { url: ca.url, token: TOKEN, profile: 'web' } });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ status: 'enabled', config: { url: ca.url, profile: 'web' }, secret_fields_set: ['token'] });
    expect(created.text).not.toContain(TOKEN);
  });

  it('issues through the kernel plugin host: the certificate verifies against the fake CA', async () => {
    const res = (await t.kernel.pluginHost.call('custom-ca', 'iss-custom', 'issue', issueRequest)) as { status: string; certificatePem: string; chainPem: string[] };
    expect(res.status).toBe('issued');
    expect(res.chainPem).toEqual([ca.caPem]);
    expect(certificateMatchesCsr(res.certificatePem, TEST_CSR_PEM)).toBe(true);
    const leaf = path.join(work, 'leaf.pem');
    fs.writeFileSync(leaf, res.certificatePem);
    const verified = await run('openssl', ['verify', '-CAfile', ca.caFile, leaf]);
    expect(verified.stdout).toMatch(/leaf\.pem: OK/);
    const sign = ca.seen.find((s) => s.path === '/sign')!;
    expect(sign).toMatchObject({ method: 'POST', authorized: true, body: { csr: TEST_CSR_PEM, certificate_id: 'mc-e2e', profile: 'web' } });

    const chain = (await t.kernel.pluginHost.call('custom-ca', 'iss-custom', 'getCaChain', {})) as { chainPem: string[] };
    expect(chain.chainPem).toEqual([ca.caPem]);
    expect(await t.kernel.pluginHost.call('custom-ca', 'iss-custom', 'issue', { ...issueRequest, csrPem: TAMPERED_CSR_PEM })).toMatchObject({ status: 'failed', retryable: false });
  });

  it('reaches nothing it was not granted', async () => {
    // A URL on another host validates against the schema, but the sandbox's fetch is refused by the broker.
    const moved = await t.api.put('/api/v1/issuers/iss-custom', { config: { url: ca.url.replace('127.0.0.1', 'localhost') } });
    expect(moved.status).toBe(200);
    const err = await t.kernel.pluginHost.call('custom-ca', 'iss-custom', 'issue', issueRequest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginCallError);
    expect(err).toMatchObject({ code: 'capability_denied', message: expect.stringMatching(/localhost/) });
    await t.api.put('/api/v1/issuers/iss-custom', { config: { url: ca.url } });

    // Disabling the plugin stops it at once.
    await t.api.post('/api/v1/plugins/custom-ca/disable');
    await expect(t.kernel.pluginHost.call('custom-ca', 'iss-custom', 'issue', issueRequest)).rejects.toMatchObject({ code: 'unavailable' });
    await t.api.post('/api/v1/plugins/custom-ca/enable');
    expect(await t.kernel.pluginHost.call('custom-ca', 'iss-custom', 'issue', issueRequest)).toMatchObject({ status: 'issued' });
  });
});
