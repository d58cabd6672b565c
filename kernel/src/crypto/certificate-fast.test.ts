import { afterAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../../../test/plugins/runtime/test-pki.js';
import { signWithLibrary } from './certificate-sign.js';
import { signLeafFast } from './certificate-sign-fast.js';
import type { SignCertificateRequest } from './crypto-types.js';
import { verifyCsrFast } from './csr-fast.js';
import { verifyCsr } from './csr-verify.js';
import { pemToDer } from './der.js';
import { ipBytes, tbsOf } from './leaf-template.js';

/**
 * The template path must write exactly what the library writes. Ed25519 signatures
 * are deterministic, so with an Ed25519 issuer whole certificates are compared;
 * with ECDSA and RSA issuers the signed bytes (TBSCertificate) are.
 */

const der = (pem: string) => pemToDer(pem, /CERTIFICATE/);

function ed25519Pki(base: TestPki) {
  base.openssl(['req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', 'ed-ca.key', '-out', 'ed-ca.crt', '-days', '30', '-subj', '/CN=Ed CA/O=certctl tests',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { certPem: base.openssl(['x509', '-in', 'ed-ca.crt']), keyPem: base.openssl(['pkey', '-in', 'ed-ca.key']) };
}

describe('leaf template path', () => {
  const ec = makeTestPki();
  const rsa = makeTestPki({ caKey: 'rsa' });
  const ed = ed25519Pki(ec);
  afterAll(() => { ec.cleanup(); rsa.cleanup(); });

  const notBefore = '2026-01-02T03:04:05.000Z';
  const notAfter = '2026-01-20T03:04:05.000Z';
  const issuers = {
    'EC P-384': { issuerCertPem: ec.caCertPem, issuerKeyPem: ec.caKeyPem },
    RSA: { issuerCertPem: rsa.caCertPem, issuerKeyPem: rsa.caKeyPem },
    Ed25519: { issuerCertPem: ed.certPem, issuerKeyPem: ed.keyPem },
  };
  const csrs = {
    'EC P-256, DNS+IPv4+email+URI SANs': ec.csr('a', { sans: 'DNS:a.example.test,DNS:*.a.example.test,IP:192.0.2.7,email:ops@example.test,URI:spiffe://example.test/w' }),
    'RSA, multi-RDN subject with escapes': ec.csr('b', { key: 'rsa', subject: '/CN=b.example.test/O=Acme, Inc./OU=Ops+Dev/C=DE' }),
    'Ed25519, no SANs': ec.csr('c', { key: 'ed25519' }),
  };
  const variants: Record<string, Partial<SignCertificateRequest>> = {
    defaults: {},
    'EKU, CDP, AIA, short serial': {
      serialNumberHex: '01',
      extensions: {
        extendedKeyUsage: ['serverAuth', 'clientAuth', '1.3.6.1.4.1.99999.1'],
        crlDistributionPoints: ['http://pki.example.test/a.crl', 'http://pki2.example.test/a.crl'],
        authorityInfoAccess: { ocsp: ['http://ocsp.example.test'], caIssuers: ['http://pki.example.test/ca.crt'] },
      },
    },
    'SAN override with IPv6, key usage, 20-byte serial, validity past 2049': {
      serialNumberHex: 'ff'.repeat(19) + '01',
      // (Not an IPv4-mapped address: the library mis-encodes those; see the ipBytes test for ours.)
      sans: ['over.example.test', '2001:db8::1', '2001:db8:0:1::abcd', 'fe80::1:2:3:4'],
      extensions: { keyUsage: ['digitalSignature', 'keyAgreement', 'decipherOnly'], subjectKeyIdentifier: true },
      notAfter: '2051-06-01T00:00:00.000Z',
      allowBeyondIssuer: true,
    },
    'no SKI or AKI': { extensions: { subjectKeyIdentifier: false, authorityKeyIdentifier: false } },
    'subject override (printable and UTF-8 common names)': { subject: 'CN=override.example.test', sans: ['override.example.test'] },
    'UTF-8 common name override': { subject: 'CN=Zürich Büro' },
  };

  for (const [issuerName, issuer] of Object.entries(issuers)) {
    for (const [csrName, csrPem] of Object.entries(csrs)) {
      for (const [variantName, variant] of Object.entries(variants)) {
        it(`${issuerName} issuer, ${csrName} CSR, ${variantName}: same bytes as the library`, async () => {
          const req: SignCertificateRequest = { csrPem, ...issuer, serialNumberHex: '8a0b0c0d0e0f1011', notBefore, notAfter, ...variant };
          const fast = await signLeafFast(req);
          expect(fast, 'the template path handles this request').not.toBeNull();
          const lib = await signWithLibrary(req);
          expect(tbsOf(der(fast!.certificatePem)).toString('hex')).toBe(tbsOf(der(lib.certificatePem)).toString('hex'));
          if (issuerName === 'Ed25519') expect(fast!.certificatePem).toBe(lib.certificatePem);
          expect({ ...fast, certificatePem: undefined, fingerprintSha256: undefined }).toEqual({ ...lib, certificatePem: undefined, fingerprintSha256: undefined });
        });
      }
    }
  }

  it('verifies with openssl and reads as expected', async () => {
    const signed = await signLeafFast({ csrPem: csrs['EC P-256, DNS+IPv4+email+URI SANs'], ...issuers['EC P-384'], serialNumberHex: '1234', notBefore: new Date(Date.now() - 60_000).toISOString(), notAfter: new Date(Date.now() + 86_400_000).toISOString(), extensions: { extendedKeyUsage: ['serverAuth'] } });
    const file = ec.write('fast.crt', signed!.certificatePem);
    expect(ec.openssl(['verify', '-CAfile', 'ca.crt', file]).trim()).toBe(`${file}: OK`);
    const text = ec.openssl(['x509', '-noout', '-text', '-in', file]);
    expect(text).toContain('DNS:a.example.test, DNS:*.a.example.test, IP Address:192.0.2.7, email:ops@example.test, URI:spiffe://example.test/w');
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
  });

  it('writes whole-second times even when asked for milliseconds', async () => {
    const signed = await signLeafFast({ csrPem: csrs['Ed25519, no SANs'], ...issuers.RSA, serialNumberHex: '77', notBefore: '2026-01-02T03:04:05.678Z', notAfter: '2026-01-03T03:04:05.999Z' });
    expect(signed).toMatchObject({ notBefore: '2026-01-02T03:04:05.000Z', notAfter: '2026-01-03T03:04:05.000Z' });
  });

  it('leaves CA certificates, rich subject overrides and bad input to the library path', async () => {
    const base: SignCertificateRequest = { csrPem: csrs['Ed25519, no SANs'], ...issuers['EC P-384'], serialNumberHex: '01', notBefore, notAfter };
    expect(await signLeafFast({ ...base, extensions: { basicConstraints: { ca: true } } })).toBeNull();
    expect(await signLeafFast({ ...base, subject: 'CN=x, O=Acme' })).toBeNull();
    expect(await signLeafFast({ ...base, subject: 'CN=a\\,b' })).toBeNull();
    expect(await signLeafFast({ ...base, serialNumberHex: 'zz' })).toBeNull();
    expect(await signLeafFast({ ...base, issuerKeyPem: rsa.caKeyPem })).toBeNull();
    expect(await signLeafFast({ ...base, notAfter: '2099-01-01T00:00:00Z' })).toBeNull();
    expect(await signLeafFast({ ...base, sans: ['not a name!'] })).toBeNull();
  });

  it('reads CSRs like the library does, and defers what it cannot read', async () => {
    for (const csrPem of Object.values(csrs)) {
      const fast = await verifyCsrFast(csrPem);
      expect(fast).not.toBeNull();
      expect(await verifyCsr(csrPem)).toEqual(fast!.info);
    }
    // IPv6 SANs in a CSR go to the library, which still verifies the request.
    const v6 = ec.csr('v6', { sans: 'DNS:v6.example.test,IP:2001:db8::5' });
    expect(await verifyCsrFast(v6)).toBeNull();
    expect(await verifyCsr(v6)).toMatchObject({ valid: true, sans: ['v6.example.test', '2001:db8::5'] });
    // A tampered request fails on both paths with the library's wording.
    const bytes = pemToDer(csrs['EC P-256, DNS+IPv4+email+URI SANs'], /CERTIFICATE REQUEST/);
    bytes[bytes.indexOf(Buffer.from('a.example.test'))] ^= 1;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${bytes.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(await verifyCsrFast(tampered)).toBeNull();
    expect(await verifyCsr(tampered)).toMatchObject({ valid: false, reason: 'the CSR signature does not match its public key' });
  });

  it('parses IPv6 text to bytes', () => {
    expect(ipBytes('2001:db8::1').toString('hex')).toBe('20010db8000000000000000000000001');
    expect(ipBytes('::').toString('hex')).toBe('0'.repeat(32));
    expect(ipBytes('::ffff:192.0.2.1').toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(ipBytes('fe80::1:2:3:4').toString('hex')).toBe('fe800000000000000001000200030004');
  });
});
