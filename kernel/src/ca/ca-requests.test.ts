import { describe, expect, it } from 'vitest';
import { parseEnsureRequest, parseSignRequest } from './ca-requests.js';
import { randomSerialHex } from './ca-serial.js';
import { adaptiveKeyUsage, csrKeyType } from './leaf-key-usage.js';

const CSR = `-----BEGIN CERTIFICATE REQUEST-----
MIIBMzCB2QIBADAjMSEwHwYDVQQDDBhjb25mb3JtYW5jZS5jZXJ0Y3RsLnRlc3Qw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ4j6zMWcnjlnI/ozjeUtOSmLhAJJao
u7SvtAxt/kni84mEx7ak1jSRarIbPtM5JF9HXKMJLgKcM9/M3e9H5Y5moFQwUgYJ
KoZIhvcNAQkOMUUwQzBBBgNVHREEOjA4ghhjb25mb3JtYW5jZS5jZXJ0Y3RsLnRl
c3SCHHd3dy5jb25mb3JtYW5jZS5jZXJ0Y3RsLnRlc3QwCgYIKoZIzj0EAwIDSQAw
RgIhAL7wLINUHcNGOXJQ/hYEIlDpib9LcMp5RUkmdlQVqRoJAiEAvBCRGKN8hNxt
ZMCewHa3/LZnnjbrv4+leIA1DLSQYvI=
-----END CERTIFICATE REQUEST-----
`;
const notAfter = '2030-01-01T00:00:00Z';

describe('ca.ensure / ca.sign request checks', () => {
  it('accepts the contract shapes and rebuilds them from known fields', () => {
    expect(parseEnsureRequest({ source: 'configured' })).toEqual({ ok: true, value: { source: 'configured' } });
    expect(parseEnsureRequest({ source: 'generate', subject: 'CN=A', keyAlgorithm: 'RSA-3072', validityDays: 10, pathLength: 0 }))
      .toEqual({ ok: true, value: { source: 'generate', subject: 'CN=A', keyAlgorithm: 'RSA-3072', validityDays: 10, pathLength: 0 } });
    const sign = parseSignRequest({ csrPem: CSR, notAfter, sans: ['a.example', 'a.example', '10.0.0.1'], extendedKeyUsage: ['serverAuth', '1.2.3.4'], keyUsage: ['digitalSignature'] });
    expect(sign).toEqual({ ok: true, value: { csrPem: CSR, notAfter, sans: ['a.example', '10.0.0.1'], extendedKeyUsage: ['serverAuth', '1.2.3.4'], keyUsage: ['digitalSignature'] } });
  });

  it('refuses anything else with a reason', () => {
    const problems = [
      parseEnsureRequest(null), parseEnsureRequest([]), parseEnsureRequest({ source: 'configured', x: 1 }),
      parseEnsureRequest({ source: 'generate', subject: '', keyAlgorithm: 'ECDSA-P256', validityDays: 1 }),
      parseEnsureRequest({ source: 'generate', subject: 'CN=a', keyAlgorithm: 'ECDSA-P256', validityDays: 1.5 }),
      parseEnsureRequest({ source: 'generate', subject: 'CN=a', keyAlgorithm: 'ECDSA-P256', validityDays: 1, pathLength: -1 }),
      parseEnsureRequest({ source: 'generate', subject: 'CN=a\0', keyAlgorithm: 'ECDSA-P256', validityDays: 1 }),
      parseSignRequest({ csrPem: 'x', notAfter }), parseSignRequest({ csrPem: CSR, notAfter: 1 }),
      parseSignRequest({ csrPem: CSR, notAfter, notBefore: 'soon' }), parseSignRequest({ csrPem: CSR, notAfter, keyUsage: [] }),
      parseSignRequest({ csrPem: CSR, notAfter, keyUsage: ['cRLSign'] }), parseSignRequest({ csrPem: CSR, notAfter, extendedKeyUsage: ['1.2'.repeat(400)] }),
      parseSignRequest({ csrPem: CSR, notAfter, sans: 'a.example' }), parseSignRequest({ csrPem: CSR, notAfter, sans: Array(1001).fill('a') }),
      parseSignRequest({ csrPem: CSR, notAfter, __proto__: { polluted: true }, issuerKeyPem: 'x' }),
    ];
    for (const p of problems) expect(p).toMatchObject({ ok: false, problem: expect.stringMatching(/^ca\.(ensure|sign): /) });
  });
});

describe('leaf key usage', () => {
  it('reads the CSR key type and adapts KeyUsage to key and EKUs', () => {
    expect(csrKeyType(CSR)).toBe('ec');
    expect(csrKeyType('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----')).toBeNull();
    expect(adaptiveKeyUsage('ec', ['serverAuth'])).toEqual(['digitalSignature']);
    expect(adaptiveKeyUsage('rsa', ['serverAuth'])).toEqual(['digitalSignature', 'keyEncipherment']);
    expect(adaptiveKeyUsage('rsa', ['clientAuth'])).toEqual(['digitalSignature']);
    expect(adaptiveKeyUsage('rsa', ['emailProtection'])).toEqual(['digitalSignature', 'nonRepudiation', 'keyEncipherment']);
    expect(adaptiveKeyUsage('ec', ['1.3.6.1.5.5.7.3.4'])).toEqual(['digitalSignature', 'nonRepudiation', 'keyAgreement']);
    expect(adaptiveKeyUsage(null, [])).toEqual(['digitalSignature']);
  });

  it('makes positive, non-zero serials of at most 16 bytes', () => {
    const serials = Array.from({ length: 200 }, randomSerialHex);
    expect(new Set(serials).size).toBe(200);
    for (const s of serials) {
      expect(s.length).toBeLessThanOrEqual(32);
      expect(parseInt(s.padStart(32, '0')[0], 16)).toBeLessThan(8);
    }
  });
});
