import crypto from 'node:crypto';

/**
 * Known material for plugin tests. The CSR is a real ECDSA P-256 request for
 * conformance.certctl.test (SANs conformance.certctl.test and
 * www.conformance.certctl.test) whose self-signature verifies; its private key
 * was thrown away, so certificates issued for it are useless outside tests.
 */
export const TEST_CSR_PEM = `-----BEGIN CERTIFICATE REQUEST-----
MIIBMzCB2QIBADAjMSEwHwYDVQQDDBhjb25mb3JtYW5jZS5jZXJ0Y3RsLnRlc3Qw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ4j6zMWcnjlnI/ozjeUtOSmLhAJJao
u7SvtAxt/kni84mEx7ak1jSRarIbPtM5JF9HXKMJLgKcM9/M3e9H5Y5moFQwUgYJ
KoZIhvcNAQkOMUUwQzBBBgNVHREEOjA4ghhjb25mb3JtYW5jZS5jZXJ0Y3RsLnRl
c3SCHHd3dy5jb25mb3JtYW5jZS5jZXJ0Y3RsLnRlc3QwCgYIKoZIzj0EAwIDSQAw
RgIhAL7wLINUHcNGOXJQ/hYEIlDpib9LcMp5RUkmdlQVqRoJAiEAvBCRGKN8hNxt
ZMCewHa3/LZnnjbrv4+leIA1DLSQYvI=
-----END CERTIFICATE REQUEST-----
`;

export const TEST_CSR_SUBJECT = { commonName: 'conformance.certctl.test', sans: ['conformance.certctl.test', 'www.conformance.certctl.test'] };

/** TEST_CSR_PEM with one bit of its signature flipped: well-formed, but the self-signature does not verify. */
export const TAMPERED_CSR_PEM = TEST_CSR_PEM.replace('ZMCewHa3/LZnnjbrv4+leIA1DLSQYvI=', 'ZMCewHa3/LZnnjbrv4+leIA1DLSQYvM=');

/** Not a CSR at all, in CSR armour. */
export const BAD_CSR_PEM = `-----BEGIN CERTIFICATE REQUEST-----
bm90IGEgY2VydGlmaWNhdGUgcmVxdWVzdCwganVzdCB0ZXh0
-----END CERTIFICATE REQUEST-----
`;

/** A self-signed P-256 certificate for deploy.conformance.certctl.test (valid until 2126), for target tests. */
export const TEST_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIB1jCCAX2gAwIBAgIUHSMJp8Dh1RCs1N1Ed3IrvoeRWa4wCgYIKoZIzj0EAwIw
KjEoMCYGA1UEAwwfZGVwbG95LmNvbmZvcm1hbmNlLmNlcnRjdGwudGVzdDAgFw0y
NjExMjIxNDU3NTdaGA8yMTI2MTAyOTE0NTc1N1owKjEoMCYGA1UEAwwfZGVwbG95
LmNvbmZvcm1hbmNlLmNlcnRjdGwudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABPYEBnIdVhh7tpqMzfkqb1isx8EhfYkXI+T9r3cPOYXCK6LthzErwdeQ0B8S
JBj0uJmDdpL4K8+LeIYudqpsshOjfzB9MB0GA1UdDgQWBBR4jujvVg5kyO41BxvQ
TRmc4+POFTAfBgNVHSMEGDAWgBR4jujvVg5kyO41BxvQTRmc4+POFTAPBgNVHRMB
Af8EBTADAQH/MCoGA1UdEQQjMCGCH2RlcGxveS5jb25mb3JtYW5jZS5jZXJ0Y3Rs
LnRlc3QwCgYIKoZIzj0EAwIDRwAwRAIgdGmDppFnCpohb8klBrFxD0jhrQR6UKfm
5P+MkmStX28CIB4pk8TtGb+ljyZ0vuXKypFwf/1xj0NZMZtRzcvVo3el
-----END CERTIFICATE-----
`;

/** The DER bytes inside the first PEM block with this label, or null. */
export function pemBody(pem: string, label: string): Buffer | null {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m) return null;
  const b64 = m[1].replace(/\s+/g, '');
  return /^[A-Za-z0-9+/]*={0,2}$/.test(b64) ? Buffer.from(b64, 'base64') : null;
}

/** One DER element: its tag, and where its contents start and end. */
function readTlv(der: Buffer, at: number): { tag: number; start: number; end: number } {
  if (at + 2 > der.length) throw new Error('truncated DER');
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) throw new Error('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
    start += n;
  }
  if (start + len > der.length) throw new Error('truncated DER');
  return { tag, start, end: start + len };
}

/**
 * The SubjectPublicKeyInfo (DER) of a PKCS#10 CSR: CertificationRequest ->
 * certificationRequestInfo -> (version, subject, subjectPKInfo). Throws when the
 * PEM is not a CSR.
 */
export function csrPublicKeyDer(csrPem: string): Buffer {
  const der = pemBody(csrPem, 'CERTIFICATE REQUEST');
  if (!der) throw new Error('not a PEM certificate request');
  const outer = readTlv(der, 0);
  const info = readTlv(der, outer.start);
  const version = readTlv(der, info.start);
  const subject = readTlv(der, version.end);
  const spki = readTlv(der, subject.end);
  if (outer.tag !== 0x30 || info.tag !== 0x30 || version.tag !== 0x02 || subject.tag !== 0x30 || spki.tag !== 0x30) throw new Error('not a PKCS#10 certificate request');
  const spkiDer = der.subarray(subject.end, spki.end);
  // Parse it to be sure it is a key, and re-export canonically.
  return crypto.createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' });
}

/** Whether a certificate (PEM) carries the public key of a CSR (PEM). */
export function certificateMatchesCsr(certificatePem: string, csrPem: string): boolean {
  const cert = new crypto.X509Certificate(certificatePem);
  return cert.publicKey.export({ type: 'spki', format: 'der' }).equals(csrPublicKeyDer(csrPem));
}
