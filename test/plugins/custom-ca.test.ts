import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuerPlugin, PluginManifest } from '@certctl/sdk';
import { createTestHost, PluginCallFailure, runConformance, TEST_CSR_PEM, TEST_CSR_SUBJECT, type TestHostOptions } from '@certctl/sdk/testing';
import customCa from '../../sdk/examples/custom-ca/src/plugin.js';
import { startFakeCa, type FakeCa } from './custom-ca-fake-ca.js';

const EXAMPLE_DIR = fileURLToPath(new URL('../../sdk/examples/custom-ca/', import.meta.url));
const manifest = (JSON.parse(fs.readFileSync(path.join(EXAMPLE_DIR, 'package.json'), 'utf8')) as { certctl: PluginManifest }).certctl;
const TOKEN = 'custom-ca-token-1e8d77';

/** The bundle evaluated the way the isolate runner does: a CommonJS function body, no require. */
async function loadBundle(): Promise<IssuerPlugin> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-custom-ca-bundle-'));
  try {
    // @ts-expect-error build.mjs is plain JS without types
    const { bundle } = (await import('../../sdk/examples/custom-ca/build.mjs')) as { bundle: (o: { outfile: string }) => Promise<unknown> };
    await bundle({ outfile: path.join(out, 'plugin.js') });
    const source = fs.readFileSync(path.join(out, 'plugin.js'), 'utf8');
    expect(source).not.toMatch(/\brequire\(|^import |^export /m);
    const module = { exports: {} as Record<string, unknown> };
    new Function('module', 'exports', 'require', source)(module, module.exports, () => { throw new Error('no require in the sandbox'); });
    return (module.exports.default ?? module.exports) as IssuerPlugin;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

describe('custom-CA example plugin against the SDK test kit', () => {
  let ca: FakeCa;
  const options = (plugin: IssuerPlugin, extra: Partial<TestHostOptions<IssuerPlugin>> = {}): TestHostOptions<IssuerPlugin> => ({
    plugin, pluginId: manifest.id, config: { url: ca.url }, secrets: { token: TOKEN }, grants: manifest.capabilities, features: manifest.features, http: ca.handler, ...extra,
  });
  const issueRequest = { certificateId: 'mc-example', csrPem: TEST_CSR_PEM, ...TEST_CSR_SUBJECT, profile: { id: null, maxTtlSeconds: null, ekus: ['serverAuth'] } };

  beforeAll(async () => { ca = await startFakeCa({ token: TOKEN, listen: false }); });
  afterAll(async () => { await ca?.close(); });

  it('passes the issuer conformance suite, as source and as the isolate bundle', async () => {
    for (const plugin of [customCa, await loadBundle()]) {
      const report = await runConformance('issuer', { ...options(plugin), manifest, unsupported: ['renew'] });
      expect(report.failed).toBe(0);
      expect(report.checks.map((c) => c.name)).toContain('getCaChain: returns the CA chain the issued certificate verifies against');
    }
    expect(ca.revoked.length).toBeGreaterThanOrEqual(2);
    expect(ca.seen.every((s) => s.authorized)).toBe(true);
  });

  it('sends the CSR and profile with the bearer token and returns the signed certificate', async () => {
    const host = createTestHost(options(customCa, { config: { url: `${ca.url}/`, profile: 'web' } }));
    const res = (await host.call('issue', issueRequest)) as { status: string; certificatePem: string; chainPem: string[] };
    expect(res.status).toBe('issued');
    expect(res.chainPem).toEqual([ca.caPem]);
    expect(host.requests[0]).toMatchObject({ url: `${ca.url}/sign`, method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(JSON.parse(host.requests[0].body!)).toEqual({ csr: TEST_CSR_PEM, certificate_id: 'mc-example', common_name: TEST_CSR_SUBJECT.commonName, sans: TEST_CSR_SUBJECT.sans, profile: 'web' });
    const leaf = path.join(ca.dir, 'verify-leaf.pem');
    fs.writeFileSync(leaf, res.certificatePem);
    expect(execFileSync('openssl', ['verify', '-CAfile', ca.caFile, leaf]).toString()).toMatch(/: OK/);
  });

  it('maps the CA answers: pending then issued, denied by policy, bad token, CA down', async () => {
    const slow = createTestHost(options(customCa, { config: { url: ca.url, profile: 'slow' } }));
    const pending = (await slow.call('issue', issueRequest)) as { status: string; orderId: string; retryAfterSeconds: number };
    expect(pending).toMatchObject({ status: 'pending', orderId: expect.stringMatching(/^ord-/), retryAfterSeconds: 1 });
    expect(await slow.call('checkOrder', { orderId: pending.orderId, certificateId: 'mc-example' })).toMatchObject({ status: 'issued' });
    expect(await slow.call('checkOrder', { orderId: 'ord-unknown', certificateId: 'mc-example' })).toMatchObject({ status: 'failed', retryable: false });

    const forbidden = createTestHost(options(customCa, { config: { url: ca.url, profile: 'forbidden' } }));
    expect(await forbidden.call('issue', issueRequest)).toEqual({ status: 'denied', reason: 'the CA refused: policy forbids conformance.certctl.test' });

    const wrongToken = createTestHost(options(customCa, { secrets: { token: 'not-the-token' } }));
    expect(await wrongToken.call('issue', issueRequest)).toMatchObject({ status: 'failed', retryable: false, reason: expect.stringMatching(/did not accept the token/) });
    expect(await wrongToken.call('validateConfig', {})).toMatchObject({ ok: false });

    const down = createTestHost(options(customCa, { http: () => { throw new Error('connect ECONNREFUSED'); } }));
    expect(await down.call('issue', issueRequest)).toMatchObject({ status: 'failed', retryable: true, reason: expect.stringMatching(/cannot reach the CA/) });
    expect(down.logs.some((l) => l.level === 'warn')).toBe(true);
  });

  it('cannot reach a CA the operator did not grant', async () => {
    const elsewhere = createTestHost(options(customCa, { config: { url: 'https://ca.attacker.example' } }));
    const err = await elsewhere.call('issue', issueRequest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginCallFailure);
    expect(err).toMatchObject({ code: 'capability_denied', message: expect.stringMatching(/ca\.attacker\.example is not among the plugin's granted hosts/) });
    const ungranted = createTestHost(options(customCa, { grants: {} }));
    expect(await ungranted.call('issue', issueRequest).catch((e: PluginCallFailure) => e.code)).toBe('capability_denied');
    expect(elsewhere.requests).toEqual([]);
  });
});
