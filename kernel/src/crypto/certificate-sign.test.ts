import { afterAll, describe, expect, it } from 'vitest';
import { makeTestPki } from '../../../test/plugins/runtime/test-pki.js';
import { signCertificate, generalNameFor } from './certificate-sign.js';
import { CryptoError, type SignCertificateRequest } from './crypto-types.js';

const hour = 3600_000;

describe('signCertificate', () => {
  const pki = makeTestPki();
  const rsaPki = makeTestPki({ caKey: 'rsa' });
  afterAll(() => { pki.cleanup(); rsaPki.cleanup(); });

  const request = (over: Partial<SignCertificateRequest> = {}): SignCertificateRequest => ({
    csrPem: pki.csr('leaf', { sans: 'DNS:leaf.example.test,DNS:alt.example.test,IP:192.0.2.7' }),
    issuerCertPem: pki.caCertPem,
    issuerKeyPem: pki.caKeyPem,
    serialNumberHex: '8a0b0c0d0e0f1011',
    notBefore: new Date(Date.now() - hour).toISOString(),
    notAfter: new Date(Date.now() + 24 * hour).toISOString(),
    ...over,
  });
  const text = (p: typeof pki, pem: string) => p.openssl(['x509', '-noout', '-text', '-in', p.write(`c-${Math.random().toString(36).slice(2)}.crt`, pem)]);

  it('signs a certificate for a CSR that openssl verify accepts, with the requested extensions', async () => {
    const signed = await signCertificate(request({
      extensions: {
        extendedKeyUsage: ['serverAuth', 'clientAuth'],
        crlDistributionPoints: ['http://pki.example.test/ca.crl'],
        authorityInfoAccess: { ocsp: ['http://ocsp.example.test'], caIssuers: ['http://pki.example.test/ca.crt'] },
      },
    }));
    const file = pki.write('leaf.crt', signed.certificatePem);
    expect(pki.openssl(['verify', '-CAfile', 'ca.crt', file]).trim()).toBe(`${file}: OK`);
    const out = text(pki, signed.certificatePem);
    expect(out).toContain('Subject: CN = leaf.example.test');
    expect(out).toContain('Issuer: CN = certctl Test CA, O = certctl tests');
    expect(out).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(out).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(out).toMatch(/Extended Key Usage: \s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(out).toMatch(/Subject Alternative Name: \s*\n\s+DNS:leaf.example.test, DNS:alt.example.test, IP Address:192.0.2.7/);
    expect(out).toContain('X509v3 Subject Key Identifier');
    expect(out).toContain('URI:http://pki.example.test/ca.crl');
    expect(out).toContain('OCSP - URI:http://ocsp.example.test');
    expect(out).toContain('CA Issuers - URI:http://pki.example.test/ca.crt');
    expect(out).toContain('Signature Algorithm: ecdsa-with-SHA384');
    // The AKI is the CA's own SKI, so chains build by key id.
    const caSki = /Subject Key Identifier: \s*\n\s+([0-9A-F:]+)/.exec(pki.openssl(['x509', '-noout', '-text', '-in', 'ca.crt']))![1];
    expect(out).toMatch(new RegExp(`Authority Key Identifier: \\s*\\n\\s+(keyid:)?${caSki}`));
    // A serial with the top bit set stays positive.
    expect(out).toMatch(/Serial Number:\s*\n\s+8a:0b:0c:0d:0e:0f:10:11/);
    expect(signed).toMatchObject({ serialNumberHex: expect.stringMatching(/8a0b0c0d0e0f1011$/), fingerprintSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('overrides subject and SANs, makes CA certificates, and signs with an RSA issuer', async () => {
    const signed = await signCertificate({
      ...request({ subject: 'CN=Override, O=Acme', sans: ['over.example.test', 'ops@example.test'], extensions: { basicConstraints: { ca: true, pathLength: 0 } } }),
      csrPem: rsaPki.csr('sub', { key: 'rsa' }), issuerCertPem: rsaPki.caCertPem, issuerKeyPem: rsaPki.caKeyPem,
    });
    const file = rsaPki.write('sub.crt', signed.certificatePem);
    expect(rsaPki.openssl(['verify', '-CAfile', 'ca.crt', file]).trim()).toBe(`${file}: OK`);
    const out = text(rsaPki, signed.certificatePem);
    expect(out).toContain('Subject: CN = Override, O = Acme');
    expect(out).toContain('DNS:over.example.test, email:ops@example.test');
    expect(out).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(out).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    expect(out).toContain('Signature Algorithm: sha256WithRSAEncryption');
  });

  it('uses RSA key usages by default for an RSA subject key', async () => {
    const signed = await signCertificate(request({ csrPem: pki.csr('rsaleaf', { key: 'rsa' }) }));
    expect(text(pki, signed.certificatePem)).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
  });

  const refusal = async (req: SignCertificateRequest): Promise<CryptoError> => {
    try {
      await signCertificate(req);
    } catch (err) {
      expect(err).toBeInstanceOf(CryptoError);
      return err as CryptoError;
    }
    throw new Error('signCertificate did not refuse');
  };

  it('refuses bad CSRs, mismatched issuer keys and bad parameters with a code', async () => {
    const good = request();
    const der = Buffer.from(good.csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.indexOf(Buffer.from('leaf.example.test'))] ^= 1;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(await refusal({ ...good, csrPem: tampered })).toMatchObject({ code: 'csr_invalid' });
    expect(await refusal({ ...good, issuerKeyPem: rsaPki.caKeyPem })).toMatchObject({ code: 'key_mismatch' });
    expect(await refusal({ ...good, issuerKeyPem: 'nope' })).toMatchObject({ code: 'issuer_invalid' });
    expect(await refusal({ ...good, serialNumberHex: 'xyz' })).toMatchObject({ code: 'bad_request' });
    expect(await refusal({ ...good, serialNumberHex: '00' })).toMatchObject({ code: 'bad_request' });
    expect(await refusal({ ...good, serialNumberHex: 'ab'.repeat(21) })).toMatchObject({ code: 'bad_request' });
    expect(await refusal({ ...good, notAfter: good.notBefore })).toMatchObject({ code: 'bad_request', message: 'notAfter must be after notBefore' });
    expect(await refusal({ ...good, notAfter: new Date(Date.now() + 400 * 24 * hour).toISOString() })).toMatchObject({ code: 'bad_request', message: expect.stringContaining("past the issuer certificate's expiry") });
    expect(await refusal({ ...good, extensions: { keyUsage: ['signEverything' as never] } })).toMatchObject({ code: 'bad_request' });
    expect(await refusal({ ...good, extensions: { extendedKeyUsage: ['anything'] } })).toMatchObject({ code: 'bad_request' });
    expect(await refusal({ ...good, extensions: { basicConstraints: { ca: false, pathLength: 1 } } })).toMatchObject({ code: 'bad_request' });
    expect(await refusal({ ...good, sans: ['not a name!'] })).toMatchObject({ code: 'bad_request' });
  });

  it('classifies SAN strings', () => {
    expect(['a.example', '*.a.example', '10.1.2.3', '2001:db8::1', 'x@y.z', 'spiffe://t/w'].map((v) => generalNameFor(v).type)).toEqual(['dns', 'dns', 'ip', 'ip', 'email', 'url']);
  });
});
