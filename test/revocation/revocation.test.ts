import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { canonicalSerial } from '../../kernel/src/revocation/leaf-facts.js';
import { revocationOf } from '../../kernel/src/revocation/revocation-services.js';
import { pkiRequestHandler } from '../../kernel/src/revocation/pki-http.js';
import { CA_FIXTURE_PLUGINS_DIR, scratch, x509Text, makeCsr } from '../ca/ca-support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { issueManaged, raw, run, write, type Issued } from './revocation-support.js';

const BASE = 'https://pki.example.test';

describe.skipIf(POSTGRES_UNAVAILABLE)('Revocation: revoke, CRL and OCSP checked with openssl', () => {
  let t: TestKernel;
  const tmp = scratch();
  let root: string;
  let rootFile: string;
  let good: Issued;
  let bad: Issued;
  const db = () => t.kernel.db.knex;
  const ocspUrl = (issuer = 'iss-rev') => `${t.kernel.url.replace('localhost', '127.0.0.1')}/.well-known/pki/ocsp/${issuer}`;

  /** `openssl ocsp` against the kernel; returns the output. */
  function ocsp(args: string[], issuer = 'iss-rev'): Promise<{ status: number; out: string }> {
    return run(['ocsp', '-issuer', rootFile, '-CAfile', rootFile, '-url', ocspUrl(issuer), '-resp_text', ...args]);
  }

  async function crlPem(issuer = 'iss-rev'): Promise<{ der: Buffer; file: string; derFile: string }> {
    const res = await raw(t, 'GET', `/.well-known/pki/crl/${issuer}`);
    expect(res.status).toBe(200);
    const derFile = write(tmp.dir, `crl-${crypto.randomBytes(3).toString('hex')}.der`, res.body);
    const pem = (await run(['crl', '-inform', 'DER', '-in', derFile])).out;
    return { der: res.body, file: write(tmp.dir, `crl-${crypto.randomBytes(3).toString('hex')}.pem`, pem), derFile };
  }

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_PLUGIN_DIRS: CA_FIXTURE_PLUGINS_DIR, CERTCTL_PUBLIC_BASE_URL: BASE } });
    expect((await t.api.post('/api/v1/issuers', { id: 'iss-rev', name: 'iss-rev', type: 'local-ca', config: {} })).status).toBe(201);
    expect((await t.api.post('/api/v1/owners', { id: 'owner-rev', name: 'Rev Owner', email: 'rev@example.test' })).status).toBe(201);
    good = await issueManaged(t, tmp.dir, 'iss-rev', { ownerId: 'owner-rev' });
    bad = await issueManaged(t, tmp.dir, 'iss-rev', { ownerId: 'owner-rev' });
    root = good.chainPem[0];
    rootFile = write(tmp.dir, 'root.pem', root);
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  it('issued certificates carry the CRL distribution point and OCSP URL of their issuer', () => {
    const text = x509Text(good.certificatePem);
    expect(text).toContain(`URI:${BASE}/.well-known/pki/crl/iss-rev`);
    expect(text).toMatch(new RegExp(`OCSP - URI:${BASE.replace(/\./g, '\\.')}/\\.well-known/pki/ocsp/iss-rev`));
  });

  it('revokes with a reason: Revoked status, a record, a completed job, audit and a notification; 409 the second time', async () => {
    const res = await t.api.post(`/api/v1/certificates/${bad.certId}/revoke`, { reason: 'keyCompromise' });
    expect(res.status, res.text).toBe(200);
    expect(res.body.certificate).toMatchObject({ id: bad.certId, status: 'Revoked', revocation_reason: 'keyCompromise' });
    expect(res.body.revocations).toEqual([expect.objectContaining({ serial_number: canonicalSerial(bad.serial), reason: 'keyCompromise', reason_code: 1, published: true })]);
    expect(res.body.job).toMatchObject({ type: 'Revocation', status: 'Completed', certificate_id: bad.certId });
    const audit = await db()('audit_events').where({ action: 'certificate_revoked', resource_id: bad.certId });
    expect(audit).toHaveLength(1);
    expect(audit[0].details).toMatchObject({ reason: 'keyCompromise', reason_code: 1 });
    const notes = await db()('notifications').where({ certificate_id: bad.certId, type: 'Revocation' });
    expect(notes.length).toBeGreaterThan(0);
    expect(notes[0]).toMatchObject({ severity: 'critical', recipient: 'rev@example.test' });

    const again = await t.api.post(`/api/v1/certificates/${bad.certId}/revoke`, { reason: 'superseded' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('already_revoked');
    expect(await db()('certificate_revocations').where({ certificate_id: bad.certId })).toHaveLength(1);
  });

  it('refuses bad requests without writing anything', async () => {
    const before = Number((await db()('certificate_revocations').count({ n: '*' }))[0].n);
    expect((await t.api.post(`/api/v1/certificates/${good.certId}/revoke`, { reason: 'removeFromCRL' })).status).toBe(400);
    expect((await t.api.post(`/api/v1/certificates/${good.certId}/revoke`, { reason: 'bogus' })).status).toBe(400);
    expect((await t.api.post(`/api/v1/certificates/${good.certId}/revoke`, { why: 'x' })).status).toBe(400);
    expect((await t.api.post('/api/v1/certificates/mc-nope/revoke', {})).status).toBe(404);
    await db()('managed_certificates').insert({ id: 'mc-never-issued', name: 'n', common_name: 'n.example.test', status: 'Pending', issuer_id: 'iss-rev' });
    const never = await t.api.post('/api/v1/certificates/mc-never-issued/revoke', {});
    expect(never.status).toBe(409);
    expect(never.body.error.code).toBe('invalid_state');
    const auditor = await t.keyWithRole('auditor');
    expect((await t.api.withKey(auditor).post(`/api/v1/certificates/${good.certId}/revoke`, {})).status).toBe(403);
    expect(Number((await db()('certificate_revocations').count({ n: '*' }))[0].n)).toBe(before);
    expect((await t.api.get(`/api/v1/certificates/${good.certId}`)).body.status).toBe('Active');
  });

  it('publishes a DER CRL that openssl verifies; verify -crl_check rejects the revoked and accepts the good certificate', async () => {
    await revocationOf(t.kernel).crl.runCycle();
    const res = await raw(t, 'GET', '/.well-known/pki/crl/iss-rev');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/pkix-crl');
    expect(res.headers['cache-control']).toMatch(/^public, max-age=\d+/);
    expect(res.headers.etag).toMatch(/^"[\w-]+"$/);
    const { file, derFile } = await crlPem();
    const checked = (await run(['crl', '-inform', 'DER', '-in', derFile, '-CAfile', rootFile, '-noout']));
    expect(checked.out).toContain('verify OK');
    const text = (await run(['crl', '-in', file, '-noout', '-text'])).out;
    expect(text).toContain(`Serial Number: ${canonicalSerial(bad.serial).toUpperCase()}\n`);
    expect(text).toContain('Key Compromise');
    expect(text).toMatch(/X509v3 CRL Number:\s+\d+/);
    expect(text).toMatch(/X509v3 Authority Key Identifier/);

    const leafBad = write(tmp.dir, 'bad.pem', bad.certificatePem);
    const leafGood = write(tmp.dir, 'good.pem', good.certificatePem);
    const rejected = (await run(['verify', '-crl_check', '-CAfile', rootFile, '-CRLfile', file, leafBad]));
    expect(rejected.status).not.toBe(0);
    expect(rejected.out).toContain('certificate revoked');
    const accepted = (await run(['verify', '-crl_check', '-CAfile', rootFile, '-CRLfile', file, leafGood]));
    expect(accepted.status, accepted.out).toBe(0);

    // ETag revalidation, and the API path serves the same CRL.
    expect((await raw(t, 'GET', '/.well-known/pki/crl/iss-rev', { headers: { 'if-none-match': res.headers.etag } })).status).toBe(304);
    const api = await raw(t, 'GET', '/api/v1/crl/iss-rev');
    expect(api.status).toBe(200);
    expect(api.body.equals(res.body)).toBe(true);
    expect((await raw(t, 'GET', '/api/v1/crl/iss-rev', { headers: { 'if-none-match': res.headers.etag } })).status).toBe(304);
    expect((await raw(t, 'GET', '/.well-known/pki/crl/iss-none')).status).toBe(404);
  });

  it('lists every RFC 5280 reason in the CRL, with monotonic CRL numbers, and a JSON view', async () => {
    const numberOf = (text: string) => Number(/X509v3 CRL Number:\s+(\d+)/.exec(text)![1]);
    const first = numberOf((await run(['crl', '-in', (await crlPem()).file, '-noout', '-text'])).out);
    const reasons = { unspecified: null, caCompromise: 'CA Compromise', affiliationChanged: 'Affiliation Changed', superseded: 'Superseded', cessationOfOperation: 'Cessation Of Operation', certificateHold: 'Certificate Hold', privilegeWithdrawn: 'Privilege Withdrawn', aACompromise: 'AA Compromise' };
    const certs: Record<string, Issued> = {};
    const csr = makeCsr(tmp.dir, { cn: 'reasons.example.test' });
    for (const reason of Object.keys(reasons)) {
      certs[reason] = await issueManaged(t, tmp.dir, 'iss-rev', { csr });
      const res = await t.api.post(`/api/v1/certificates/${certs[reason].certId}/revoke`, { reason });
      expect(res.status, res.text).toBe(200);
    }
    await revocationOf(t.kernel).crl.runCycle();
    const { file, derFile } = await crlPem();
    expect((await run(['crl', '-inform', 'DER', '-in', derFile, '-CAfile', rootFile, '-noout'])).out).toContain('verify OK');
    const text = (await run(['crl', '-in', file, '-noout', '-text'])).out;
    expect(numberOf(text)).toBeGreaterThan(first);
    for (const [reason, label] of Object.entries(reasons)) {
      const serial = canonicalSerial(certs[reason].serial).toUpperCase();
      const block = text.split('Serial Number: ').find((b) => b.startsWith(`${serial}\n`))!;
      expect(block, reason).toBeDefined();
      if (label) expect(block).toContain(label);
      else expect(block).not.toContain('CRL Reason Code');
    }
    const json = await t.api.get('/api/v1/crl?issuer_id=iss-rev');
    expect(json.status).toBe(200);
    expect(json.body).toMatchObject({ version: 2, total: 9 });
    expect(json.body.entries.map((e: { reason: string }) => e.reason)).toEqual(expect.arrayContaining(['keyCompromise', 'caCompromise', 'aaCompromise', 'certificateHold']));
    expect(json.body.crls[0]).toMatchObject({ issuer_id: 'iss-rev', entries: 9, url: `${BASE}/.well-known/pki/crl/iss-rev` });
  });

  it('answers OCSP good, revoked with time and reason, unknown; openssl verifies the delegated responder, with and without a nonce', async () => {
    const goodFile = write(tmp.dir, 'good2.pem', good.certificatePem);
    const badFile = write(tmp.dir, 'bad2.pem', bad.certificatePem);
    for (const nonce of [[], ['-no_nonce']]) {
      const g = (await ocsp(['-cert', goodFile, ...nonce]));
      expect(g.out).toContain('Response verify OK');
      expect(g.out).toContain(`${goodFile}: good`);
      const b = (await ocsp(['-cert', badFile, ...nonce]));
      expect(b.out).toContain('Response verify OK');
      expect(b.out).toContain(`${badFile}: revoked`);
      expect(b.out).toMatch(/Reason: keyCompromise/);
      expect(b.out).toMatch(/Revocation Time: /);
      const u = (await ocsp(['-serial', '0x1234567890abcdef', ...nonce]));
      expect(u.out).toContain('Response verify OK');
      expect(u.out).toContain('0x1234567890abcdef: unknown');
      if (nonce.length) expect(g.out).not.toContain('OCSP Nonce');
      else expect(g.out).toMatch(/Response Extensions:\s+OCSP Nonce/);
    }
    const responder = await db()('ocsp_responders').where({ issuer_id: 'iss-rev', status: 'active' }).first();
    const rtext = x509Text(responder.certificate_pem);
    expect(rtext).toMatch(/Extended Key Usage:\s+OCSP Signing/);
    expect(rtext).toContain('OCSP No Check');
    expect(rtext).toMatch(/Key Usage: critical\s+Digital Signature/);
  });

  it('serves the GET form and cached answers, and shows a revocation immediately', async () => {
    const fresh = await issueManaged(t, tmp.dir, 'iss-rev');
    const freshFile = write(tmp.dir, 'fresh.pem', fresh.certificatePem);
    const reqFile = path.join(tmp.dir, 'req.der');
    expect((await run(['ocsp', '-issuer', rootFile, '-cert', freshFile, '-no_nonce', '-reqout', reqFile])).status).toBe(0);
    const encoded = encodeURIComponent(fs.readFileSync(reqFile).toString('base64'));
    const first = await raw(t, 'GET', `/.well-known/pki/ocsp/iss-rev/${encoded}`);
    expect(first.status).toBe(200);
    expect(first.headers['content-type']).toBe('application/ocsp-response');
    expect(first.headers['cache-control']).toMatch(/^public, max-age=\d+/);
    const again = await raw(t, 'GET', `/.well-known/pki/ocsp/iss-rev/${encoded}`);
    expect(again.body.equals(first.body)).toBe(true); // the cached, pre-signed answer
    const respFile = write(tmp.dir, 'resp.der', first.body);
    const status = (await run(['ocsp', '-respin', respFile, '-issuer', rootFile, '-CAfile', rootFile, '-cert', freshFile]));
    expect(status.out).toContain('Response verify OK');
    expect(status.out).toContain(`${freshFile}: good`);

    expect((await t.api.post(`/api/v1/certificates/${fresh.certId}/revoke`, { reason: 'superseded' })).status).toBe(200);
    const after = await raw(t, 'GET', `/.well-known/pki/ocsp/iss-rev/${encoded}`);
    const afterFile = write(tmp.dir, 'resp2.der', after.body);
    const revoked = (await run(['ocsp', '-respin', afterFile, '-issuer', rootFile, '-CAfile', rootFile, '-cert', freshFile, '-resp_text']));
    expect(revoked.out).toContain(`${freshFile}: revoked`);
    expect(revoked.out).toContain('Reason: superseded');
    // And the API's per-serial form.
    const api = await raw(t, 'GET', `/api/v1/ocsp/iss-rev/${fresh.serial}`);
    expect(api.status).toBe(200);
    expect((await run(['ocsp', '-respin', write(tmp.dir, 'resp3.der', api.body), '-CAfile', rootFile, '-resp_text', '-noverify'])).out).toContain('Cert Status: revoked');

    // The next CRL generation lists it.
    await revocationOf(t.kernel).crl.runCycle();
    const { file } = await crlPem();
    expect((await run(['verify', '-crl_check', '-CAfile', rootFile, '-CRLfile', file, freshFile])).out).toContain('certificate revoked');
  });

  it('answers malformed requests with malformedRequest and foreign CAs with unauthorized, never a 500', async () => {
    for (const body of [Buffer.from('not der at all'), Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])]) {
      const res = await raw(t, 'POST', '/.well-known/pki/ocsp/iss-rev', { body });
      expect(res.status).toBe(200);
      expect(res.body.toString('hex')).toBe('30030a0101');
    }
    const get = await raw(t, 'GET', '/.well-known/pki/ocsp/iss-rev/%%%');
    expect(get.body.toString('hex')).toBe('30030a0101');
    const respFile = write(tmp.dir, 'malformed.der', Buffer.from('30030a0101', 'hex'));
    expect((await run(['ocsp', '-respin', respFile, '-resp_text'])).out).toMatch(/malformedrequest/i);

    expect((await t.api.post('/api/v1/issuers', { id: 'iss-other', name: 'iss-other', type: 'local-ca', config: { subject: 'CN=Other CA' } })).status).toBe(201);
    const other = await issueManaged(t, tmp.dir, 'iss-other');
    const otherRoot = write(tmp.dir, 'other-root.pem', other.chainPem[0]);
    const wrong = (await run(['ocsp', '-issuer', otherRoot, '-cert', write(tmp.dir, 'other.pem', other.certificatePem), '-url', ocspUrl('iss-rev'), '-CAfile', otherRoot]));
    expect(wrong.out).toMatch(/unauthorized/i);
    expect((await run(['ocsp', '-issuer', rootFile, '-serial', '0x01', '-url', ocspUrl('iss-missing'), '-CAfile', rootFile])).out).toMatch(/unauthorized/i);
  });

  it('leaves short-lived certificates out of CDP/AIA and the CRL', async () => {
    const short = await issueManaged(t, tmp.dir, 'iss-rev', { notAfter: new Date(Date.now() + 30 * 60_000).toISOString() });
    const text = x509Text(short.certificatePem);
    expect(text).not.toContain('CRL Distribution Points');
    expect(text).not.toContain('OCSP - URI');
    const res = await t.api.post(`/api/v1/certificates/${short.certId}/revoke`, { reason: 'keyCompromise' });
    expect(res.status).toBe(200);
    expect(res.body.revocations[0]).toMatchObject({ short_lived: true, published: false });
    await revocationOf(t.kernel).crl.runCycle();
    const { file } = await crlPem();
    const shortFile = write(tmp.dir, 'short.pem', short.certificatePem);
    // Not listed: the CRL check passes; expiry is its revocation.
    expect((await run(['verify', '-crl_check', '-CAfile', rootFile, '-CRLfile', file, shortFile])).status).toBe(0);
  });

  it('keeps a replaced (retiring) CA publishing: its own CRL URL and OCSP answers for what it signed', async () => {
    const old = await issueManaged(t, tmp.dir, 'iss-rev');
    const oldCa = await db()('certificate_authorities').where({ issuer_id: 'iss-rev', status: 'active' }).first();
    expect((await raw(t, 'GET', `/.well-known/pki/crl/iss-rev/${oldCa.id}`)).status).toBe(200);
    expect((await raw(t, 'GET', '/.well-known/pki/crl/iss-rev/ca-unknown')).status).toBe(404);
    // Replace the CA the way an operator change does: the old one moves to retiring, the next issuance makes a new one.
    await db()('certificate_authorities').where({ id: oldCa.id }).update({ status: 'retiring' });
    let fresh!: Issued;
    await vi.waitFor(async () => {
      fresh = await issueManaged(t, tmp.dir, 'iss-rev');
      expect(fresh.chainPem[0]).not.toBe(root);
    }, { timeout: 15_000, interval: 1000 });
    expect((await t.api.post(`/api/v1/certificates/${old.certId}/revoke`, { reason: 'cessationOfOperation' })).status).toBe(200);
    await revocationOf(t.kernel).crl.runCycle();
    const oldCrl = await raw(t, 'GET', `/.well-known/pki/crl/iss-rev/${oldCa.id}`);
    const oldDer = write(tmp.dir, 'old-ca.der', oldCrl.body);
    expect((await run(['crl', '-inform', 'DER', '-in', oldDer, '-CAfile', rootFile, '-noout'])).out).toContain('verify OK');
    const oldPem = write(tmp.dir, 'old-ca.pem', (await run(['crl', '-inform', 'DER', '-in', oldDer])).out);
    expect((await run(['verify', '-crl_check', '-CAfile', rootFile, '-CRLfile', oldPem, write(tmp.dir, 'old-leaf.pem', old.certificatePem)])).out).toContain('certificate revoked');
    // The issuer URL now serves the new CA's CRL, signed by the new root.
    const newRoot = write(tmp.dir, 'new-root.pem', fresh.chainPem[0]);
    const current = write(tmp.dir, 'new-ca.der', (await raw(t, 'GET', '/.well-known/pki/crl/iss-rev')).body);
    expect((await run(['crl', '-inform', 'DER', '-in', current, '-CAfile', newRoot, '-noout'])).out).toContain('verify OK');
    // OCSP still answers for the old CA's serials, and for the new CA's.
    const o = await ocsp(['-cert', write(tmp.dir, 'old-leaf2.pem', old.certificatePem)]);
    expect(o.out).toContain('Response verify OK');
    expect(o.out).toMatch(/: revoked/);
    const n = await run(['ocsp', '-issuer', newRoot, '-CAfile', newRoot, '-url', ocspUrl(), '-cert', write(tmp.dir, 'new-leaf.pem', fresh.certificatePem)]);
    expect(n.out).toContain('Response verify OK');
    expect(n.out).toMatch(/: good/);
  });

  it('limits OCSP requests per client address with tryLater', async () => {
    const k = { ...t.kernel, config: { ...t.kernel.config, pkiRateLimit: { rps: 1, burst: 2 } } };
    const server = http.createServer(pkiRequestHandler(k, (_req, res) => { res.statusCode = 404; res.end(); }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/pki/ocsp/iss-rev`;
      const answers: string[] = [];
      for (let i = 0; i < 4; i++) {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: Buffer.from('junk') });
        answers.push(Buffer.from(await res.arrayBuffer()).toString('hex'));
      }
      expect(answers.slice(0, 2)).toEqual(['30030a0101', '30030a0101']);
      expect(answers.slice(2)).toEqual(['30030a0103', '30030a0103']);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
