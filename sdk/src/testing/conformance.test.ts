import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePlugin, type IssuerPlugin, type NotifierPlugin, type TargetPlugin } from '../index.js';
import { deployFiles, restoreSnapshot } from '../deploy/index.js';
import { ConformanceError, runConformance, type ConformanceReport, type FakeHttpHandler } from './index.js';

/** A throwaway CA signing with openssl, behind a fake HTTP API (what a real CA service would do). */
let dir: string;
let caPem: string;
const openssl = (args: string[], input?: string) => execFileSync('openssl', args, { cwd: dir, input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-kit-ca-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=Kit Test CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  caPem = fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const fakeCa: FakeHttpHandler = (req) => {
  if (req.url.endsWith('/ca')) return { status: 200, body: { chain: [caPem] } };
  const { csr } = JSON.parse(req.body ?? '{}') as { csr: string };
  try {
    fs.writeFileSync(path.join(dir, 'req.csr'), csr);
    const cert = openssl(['x509', '-req', '-in', 'req.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(Date.now()), '-days', '1']);
    return { status: 200, body: { certificate: cert, chain: [caPem] } };
  } catch {
    return { status: 400, body: { error: 'bad csr' } };
  }
};

/** A well-behaved issuer: asks the CA, maps its answers to contract results. */
const goodIssuer = definePlugin({
  kind: 'issuer',
  async issue(request, ctx) {
    const res = await ctx.http.fetch({ url: 'https://ca.example.com/sign', method: 'POST', body: JSON.stringify({ csr: request.csrPem }) });
    if (res.status !== 200) return { status: 'failed', reason: `CA answered ${res.status}`, retryable: false };
    const body = JSON.parse(res.body) as { certificate: string; chain: string[] };
    return { status: 'issued', certificatePem: body.certificate, chainPem: body.chain };
  },
  async getCaChain(_request, ctx) {
    const res = await ctx.http.fetch({ url: 'https://ca.example.com/ca' });
    return { chainPem: (JSON.parse(res.body) as { chain: string[] }).chain };
  },
} satisfies IssuerPlugin);

const grants = { http: { hosts: ['ca.example.com'] } };
const names = (r: ConformanceReport) => r.checks.filter((c) => !c.ok).map((c) => c.name);
const failures = async (p: Promise<ConformanceReport>) => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ConformanceError);
  return (err as ConformanceError).report;
};

describe('runConformance', () => {
  it('passes a well-behaved issuer and reports every check', async () => {
    const report = await runConformance('issuer', { plugin: goodIssuer, grants, http: fakeCa, unsupported: ['renew', 'revoke'], manifest: { kind: 'issuer', features: [] } });
    expect(report.failed).toBe(0);
    expect(report.checks.map((c) => c.name)).toEqual(expect.arrayContaining([
      'issue: a valid CSR is issued with a certificate for its key',
      'issue: a damaged CSR is failed or denied, not thrown',
      'issue: a CSR whose signature does not verify is failed or denied, not thrown',
      'getCaChain: returns the CA chain the issued certificate verifies against',
      'revoke: declared unsupported and absent',
    ]));
  });

  it('fails an issuer that throws on bad input, lies about its surface or returns off-contract results', async () => {
    const sloppy = definePlugin({
      kind: 'issuer',
      async issue(request, ctx) {
        const res = await ctx.http.fetch({ url: 'https://ca.example.com/sign', method: 'POST', body: JSON.stringify({ csr: request.csrPem }) });
        if (res.status !== 200) throw new Error('CA said no');
        const body = JSON.parse(res.body) as { certificate: string; chain: string[] };
        return { status: 'issued', certificatePem: body.certificate, chainPem: body.chain, issuedAt: new Date().toISOString() } as never;
      },
      async revoke() { return { status: 'revoked' }; },
    } satisfies IssuerPlugin);
    const report = await failures(runConformance('issuer', { plugin: sloppy, grants, http: fakeCa, unsupported: ['renew', 'revoke', 'teleport'], manifest: { kind: 'issuer', features: [] } }));
    expect(names(report)).toEqual(expect.arrayContaining([
      'issue: a valid CSR',
      'issue: a damaged CSR is failed or denied, not thrown',
      'declares only known optional methods as unsupported',
      'getCaChain: implemented',
      'revoke: declared unsupported and absent',
      'manifest feature "revoke" matches the revoke method',
    ]));
    expect(report.checks.find((c) => c.name === 'issue: a valid CSR')!.detail).toMatch(/\[bad_result\].*issuedAt is not a field/);
  });

  it('fails an issuer whose certificate is not for the CSR key, and one without its grants', async () => {
    const wrongKey = definePlugin({ kind: 'issuer', async issue() { return { status: 'issued', certificatePem: caPem, chainPem: [caPem] }; } } satisfies IssuerPlugin);
    const r1 = await failures(runConformance('issuer', { plugin: wrongKey, unsupported: ['renew', 'revoke', 'getCaChain'] }));
    expect(r1.checks.find((c) => c.name.startsWith('issue: a valid CSR is issued'))!.detail).toMatch(/does not carry the CSR's public key/);
    const r2 = await failures(runConformance('issuer', { plugin: goodIssuer, http: fakeCa, unsupported: ['renew', 'revoke'] }));
    expect(r2.checks.find((c) => c.name === 'issue: a valid CSR')!.detail).toMatch(/\[capability_denied\]/);
  });

  it('holds targets and notifiers to their minimal suites', async () => {
    const target = definePlugin({
      kind: 'target',
      async deploy(request, ctx) {
        return deployFiles(ctx, { files: [{ path: '/etc/ssl/certctl/cert.pem', content: request.certificatePem }] });
      },
      async verify(request) { return { status: 'success', observedFingerprintSha256: request.fingerprintSha256 }; },
      async rollback(request, ctx) { return restoreSnapshot(ctx, request.snapshotId); },
    } satisfies TargetPlugin);
    const t = await runConformance('target', { plugin: target, grants: { fs: { paths: ['/etc/ssl/certctl'] }, kv: true }, unsupported: ['validate'] });
    expect(t.failed).toBe(0);
    expect(t.checks.map((c) => c.name)).toContain('rollback: restores the previous files');

    const notifier = definePlugin({ kind: 'notifier', async notify() { return { status: 'sent' }; } } satisfies NotifierPlugin);
    expect((await runConformance('notifier', { plugin: notifier })).failed).toBe(0);
    const rude = definePlugin({ kind: 'notifier', async notify() { return { status: 'ok' } as never; } } satisfies NotifierPlugin);
    expect(names(await failures(runConformance('notifier', { plugin: rude })))).toEqual(['notify: answers with a contract result']);
    expect(names(await failures(runConformance('target', { plugin: notifier as never })))).toContain('exports a target plugin');
  });
});
