import { afterAll, describe, expect, it } from 'vitest';
import { makeTestPki } from '../../../test/plugins/runtime/test-pki.js';
import { verifyCsr } from './csr-verify.js';

describe('verifyCsr', () => {
  const pki = makeTestPki();
  afterAll(() => pki.cleanup());

  it('accepts an EC P-256 CSR made by openssl req and reports what it asks for', async () => {
    const pem = pki.csr('app', { subject: '/CN=app.example.test/O=Acme', sans: 'DNS:app.example.test,DNS:www.example.test,IP:10.0.0.1,email:pki@example.test,URI:https://app.example.test/' });
    expect(await verifyCsr(pem)).toEqual({
      valid: true,
      subject: 'CN=app.example.test, O=Acme',
      sans: ['app.example.test', 'www.example.test', '10.0.0.1', 'pki@example.test', 'https://app.example.test/'],
      publicKeyAlgorithm: 'EC',
      keySize: 256,
      namedCurve: 'P-256',
      signatureAlgorithm: 'ecdsa-with-SHA256',
    });
  });

  it('accepts RSA and Ed25519 CSRs, and DER bytes', async () => {
    const rsa = pki.csr('rsa', { key: 'rsa' });
    expect(await verifyCsr(rsa)).toMatchObject({ valid: true, publicKeyAlgorithm: 'RSA', keySize: 2048, signatureAlgorithm: 'sha256WithRSAEncryption', sans: [] });
    expect(await verifyCsr(pki.csr('ed', { key: 'ed25519' }))).toMatchObject({ valid: true, publicKeyAlgorithm: 'Ed25519', keySize: 256, signatureAlgorithm: 'ED25519' });
    const der = Buffer.from(rsa.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    expect(await verifyCsr(new Uint8Array(der))).toMatchObject({ valid: true, subject: 'CN=rsa.example.test' });
  });

  it('rejects a CSR whose signed content was changed', async () => {
    const pem = pki.csr('tamper', { subject: '/CN=tamper.example.test' });
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    // Change one letter of the subject (inside the signed part): "tamper" -> "tampes".
    const at = der.indexOf(Buffer.from('tamper.example.test'));
    expect(at).toBeGreaterThan(0);
    der[at + 5] = 's'.charCodeAt(0);
    const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    const info = await verifyCsr(forged);
    expect(info).toMatchObject({ valid: false, subject: 'CN=tampes.example.test', reason: 'the CSR signature does not match its public key' });
  });

  it('reports unusable input as invalid instead of throwing', async () => {
    expect(await verifyCsr('')).toMatchObject({ valid: false, reason: 'the CSR is empty' });
    expect(await verifyCsr('hello')).toMatchObject({ valid: false, reason: expect.stringContaining('not PEM') });
    expect(await verifyCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----')).toMatchObject({ valid: false, reason: expect.stringContaining('not a PKCS#10') });
    expect(await verifyCsr(pki.caCertPem)).toMatchObject({ valid: false });
    expect(await verifyCsr('x'.repeat(70_000))).toMatchObject({ valid: false, reason: expect.stringContaining('over 65536 bytes') });
  });
});
