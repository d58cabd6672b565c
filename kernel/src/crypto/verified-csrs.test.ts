import { afterAll, describe, expect, it } from 'vitest';
import { makeTestPki } from '../../../test/plugins/runtime/test-pki.js';
import { CryptoService } from './crypto-service.js';
import { VerifiedCsrs } from './verified-csrs.js';

/** A CSR with one letter of its signed subject changed: well formed, signature broken. */
function tampered(pem: string, from: string, to: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const at = der.indexOf(Buffer.from(from));
  der.write(to, at, 'latin1');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}

describe('verified CSR memory (one signature check per issuance)', () => {
  const pki = makeTestPki();
  const svc = new CryptoService({ maxThreads: 1 });
  afterAll(async () => { await svc.close(); pki.cleanup(); });
  const sign = (csrPem: string) => svc.signCertificate({
    csrPem, issuerCertPem: pki.caCertPem, issuerKeyPem: pki.caKeyPem, serialNumberHex: '0a1b2c3d',
    notBefore: new Date(Date.now() - 60_000).toISOString(), notAfter: new Date(Date.now() + 86_400_000).toISOString(), extensions: { extendedKeyUsage: ['serverAuth'] },
  });

  it('signs a CSR verified before, and one never verified, alike', async () => {
    const seen = pki.csr('seen', { sans: 'DNS:seen.example.test' });
    expect((await svc.verifyCsr(seen)).valid).toBe(true);
    const a = await sign(seen);
    const b = await sign(pki.csr('unseen', { sans: 'DNS:unseen.example.test' }));
    expect(a.certificatePem).toContain('BEGIN CERTIFICATE');
    expect(b.certificatePem).toContain('BEGIN CERTIFICATE');
  });

  it('never skips the check for bytes that failed it or were changed after it', async () => {
    const good = pki.csr('tamper', { subject: '/CN=tamper.example.test' });
    expect((await svc.verifyCsr(good)).valid).toBe(true);
    const bad = tampered(good, 'tamper', 'tampes');
    // Checked and refused: not remembered as verified.
    expect((await svc.verifyCsr(bad)).valid).toBe(false);
    await expect(sign(bad)).rejects.toMatchObject({ code: 'csr_invalid' });
    // Never checked at all: the signing task checks it.
    const other = tampered(pki.csr('other', { subject: '/CN=other.example.test' }), 'other', 'othes');
    await expect(sign(other)).rejects.toMatchObject({ code: 'csr_invalid' });
  });

  it('forgets the oldest entries beyond its bound', () => {
    const m = new VerifiedCsrs(2);
    const [a, b, c] = ['a', 'b', 'c'].map((x) => VerifiedCsrs.digest(x));
    m.add(a); m.add(b); m.add(c);
    expect([m.has(a), m.has(b), m.has(c)]).toEqual([false, true, true]);
  });
});
