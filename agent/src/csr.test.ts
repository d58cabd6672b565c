import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCsr, splitSans } from './csr.js';
import { makeCsrForItem, CsrWorkRefused } from './csr-work.js';
import { KeyStore } from './key-store.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-csr-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The CSR as openssl prints it; openssl's signature check must pass too (it exits non-zero otherwise). */
const opensslText = (pem: string) => {
  execFileSync('openssl', ['req', '-noout', '-verify'], { input: pem, stdio: ['pipe', 'pipe', 'pipe'] });
  return execFileSync('openssl', ['req', '-noout', '-text', '-nameopt', 'RFC2253'], { input: pem }).toString();
};

describe('CSR building', () => {
  it('splits SANs by type: @ -> email, IP literal -> IP, else DNS', () => {
    expect(splitSans(['www.example.com', '10.0.0.1', 'ops@example.com', '2001:db8::1', '[::1]', ' '])).toEqual({
      dns: ['www.example.com'], ip: ['10.0.0.1', '2001:db8::1', '::1'], email: ['ops@example.com'],
    });
  });

  it('makes a P-256 key 0600 in a 0700 directory and a CSR openssl verifies, with CN and typed SANs', async () => {
    const keys = new KeyStore(path.join(tmp, 'keys'));
    await keys.init();
    const out = await makeCsrForItem({ kind: 'csr', job_id: 'job-1', job_type: 'Issuance', certificate_id: 'mc-web', common_name: 'web.example.com', sans: ['web.example.com', 'alt.example.com', '192.0.2.7', 'admin@example.com'], key_algorithm: 'ECDSA-P256' }, keys);
    expect(fs.statSync(out.keyPath).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(out.keyPath)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(keys.dir).mode & 0o777).toBe(0o700);
    expect(out.csr_pem).not.toContain('PRIVATE KEY');
    const text = opensslText(out.csr_pem);
    expect(text).toMatch(/Subject: CN=web\.example\.com\n/);
    expect(text).toMatch(/ASN1 OID: prime256v1/);
    expect(text).toMatch(/DNS:web\.example\.com, DNS:alt\.example\.com, IP Address:192\.0\.2\.7, email:admin@example\.com/);
    // The CSR's public key is the stored key's.
    const keyPub = crypto.createPublicKey(fs.readFileSync(out.keyPath, 'utf8')).export({ type: 'spki', format: 'der' });
    const csrPub = execFileSync('openssl', ['req', '-noout', '-pubkey'], { input: out.csr_pem }).toString();
    expect(crypto.createPublicKey(csrPub).export({ type: 'spki', format: 'der' }).equals(keyPub)).toBe(true);
  });

  it('uses the common name as the only SAN when the certificate lists none; a CN with RFC 4514 specials needs no escaping', async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const text = opensslText(await buildCsr({ commonName: 'api.example.com', sans: [], privateKey, publicKey }));
    expect(text).toMatch(/DNS:api\.example\.com/);
    const odd = opensslText(await buildCsr({ commonName: 'Acme, Inc+ "x"', sans: ['a.example.com'], privateKey, publicKey }));
    expect(odd).toContain('Subject: CN=Acme\\, Inc\\+ \\"x\\"\n');
    expect(odd).toMatch(/DNS:a\.example\.com/);
  });

  it.each([
    ['RSA-3072', /Public-Key: \(3072 bit\)/, /sha256WithRSAEncryption/],
    ['ECDSA-P384', /ASN1 OID: secp384r1/, /ecdsa-with-SHA384/],
    ['ECDSA-P521', /ASN1 OID: secp521r1/, /ecdsa-with-SHA512/],
    ['Ed25519', /Public Key Algorithm: ED25519/, /Signature Algorithm: ED25519/],
  ] as const)('makes the %s key the item asks for, 0600, and a CSR signed with it', async (algorithm, keyText, sigText) => {
    const keys = new KeyStore(path.join(tmp, `keys-${algorithm}`));
    await keys.init();
    const out = await makeCsrForItem({ kind: 'csr', job_id: 'j', job_type: 'Issuance', certificate_id: 'mc-alg', common_name: 'alg.example.com', sans: [], key_algorithm: algorithm }, keys);
    expect(fs.statSync(out.keyPath).mode & 0o777).toBe(0o600);
    const text = opensslText(out.csr_pem);
    expect(text).toMatch(keyText);
    expect(text).toMatch(sigText);
    const keyPub = crypto.createPublicKey(fs.readFileSync(out.keyPath, 'utf8')).export({ type: 'spki', format: 'der' });
    const csrPub = execFileSync('openssl', ['req', '-noout', '-pubkey'], { input: out.csr_pem }).toString();
    expect(crypto.createPublicKey(csrPub).export({ type: 'spki', format: 'der' }).equals(keyPub)).toBe(true);
  });

  it('refuses items it cannot serve, before making a key', async () => {
    const keys = new KeyStore(path.join(tmp, 'keys2'));
    await keys.init();
    const base = { kind: 'csr' as const, job_id: 'j', job_type: 'Issuance' as const, certificate_id: 'mc-x', common_name: 'x.example.com', sans: [], key_algorithm: 'ECDSA-P256' as const };
    for (const bad of ['DSA-2048', 'RSA-1024', 'RSA-2049', 'ECDSA-P192', 'rsa-2048'])
      await expect(makeCsrForItem({ ...base, key_algorithm: bad as never }, keys)).rejects.toBeInstanceOf(CsrWorkRefused);
    await expect(makeCsrForItem({ ...base, common_name: '' }, keys)).rejects.toBeInstanceOf(CsrWorkRefused);
    await expect(makeCsrForItem({ ...base, certificate_id: '../../etc' }, keys)).rejects.toThrow(/not a valid id/);
    expect(fs.readdirSync(keys.dir)).toEqual([]);
  });
});
