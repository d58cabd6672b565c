import { afterAll, describe, expect, it } from 'vitest';
import { CryptoService } from '../../../kernel/src/crypto/crypto-service.js';
import { CryptoError } from '../../../kernel/src/crypto/crypto-types.js';
import { makeTestPki } from './test-pki.js';

describe('CryptoService (the crypto Piscina pool)', () => {
  const pki = makeTestPki();
  const service = new CryptoService({ maxThreads: 2 });
  afterAll(async () => {
    await service.close();
    pki.cleanup();
  });

  it('verifies CSRs in the pool', async () => {
    const csr = pki.csr('pool', { sans: 'DNS:pool.example.test' });
    await expect(service.verifyCsr(csr)).resolves.toMatchObject({ valid: true, subject: 'CN=pool.example.test', sans: ['pool.example.test'], publicKeyAlgorithm: 'EC', keySize: 256 });
    await expect(service.verifyCsr('garbage')).resolves.toMatchObject({ valid: false });
  });

  it('signs in the pool; openssl verify accepts the result', async () => {
    const now = Date.now();
    const requests = Array.from({ length: 4 }, (_, i) => service.signCertificate({
      csrPem: pki.csr(`p${i}`), issuerCertPem: pki.caCertPem, issuerKeyPem: pki.caKeyPem, serialNumberHex: (0x1000 + i).toString(16),
      notBefore: new Date(now - 60_000).toISOString(), notAfter: new Date(now + 3600_000).toISOString(), extensions: { extendedKeyUsage: ['serverAuth'] },
    }));
    const signed = await Promise.all(requests);
    for (const [i, s] of signed.entries()) {
      const file = pki.write(`p${i}.crt`, s.certificatePem);
      expect(pki.openssl(['verify', '-CAfile', 'ca.crt', file]).trim()).toBe(`${file}: OK`);
      expect(pki.openssl(['x509', '-noout', '-ext', 'extendedKeyUsage', '-in', file])).toContain('TLS Web Server Authentication');
    }
    expect(new Set(signed.map((s) => s.serialNumberHex)).size).toBe(4);
  });

  it('carries refusal codes across the thread boundary', async () => {
    const err = await service.signCertificate({
      csrPem: pki.csr('bad'), issuerCertPem: pki.caCertPem, issuerKeyPem: makeOtherKey(), serialNumberHex: '01',
      notBefore: new Date().toISOString(), notAfter: new Date(Date.now() + 3600_000).toISOString(),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryptoError);
    expect(err).toMatchObject({ code: 'key_mismatch' });
  });

  it('refuses work once closed', async () => {
    const s = new CryptoService();
    await s.close();
    await expect(s.verifyCsr('x')).rejects.toMatchObject({ code: 'unavailable' });
  });

  function makeOtherKey(): string {
    pki.openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', 'other.key']);
    return pki.openssl(['pkey', '-in', 'other.key']);
  }
});
