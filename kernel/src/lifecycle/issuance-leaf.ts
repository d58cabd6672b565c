import crypto from 'node:crypto';
import { describePublicKey } from '../crypto/csr-verify.js';
import { keyAlgorithmName } from './profile-enforcement.js';

/** An issued certificate as the inventory stores it. */
export interface IssuedLeaf {
  /** Leaf PEM, then the chain PEMs, each ending in a newline. */
  pemChain: string;
  /** Lower-case hex, as the CA encoded it (no leading-zero trimming). */
  serialNumber: string;
  /** SHA-256 of the DER, lower-case hex without colons (what agents compare against). */
  fingerprintSha256: string;
  notBefore: Date;
  notAfter: Date;
  keyAlgorithm: string;
  keySize: number | null;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const blocks = (text: string): string[] => (text.match(PEM_BLOCK) ?? []).map((b) => `${b.trim()}\n`);

/** The SubjectPublicKeyInfo of a PKCS#10 request (DER walk: request -> info -> version, subject, spki). */
export function csrPublicKey(csrPem: string): crypto.KeyObject {
  const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const tlv = (buf: Buffer, at: number) => {
    let len = buf[at + 1];
    let head = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[at + 2 + i];
      head += n;
    }
    return { start: at, contentStart: at + head, end: at + head + len };
  };
  const request = tlv(der, 0);
  const info = tlv(der, request.contentStart);
  const version = tlv(der, info.contentStart);
  const subject = tlv(der, version.end);
  const spki = tlv(der, subject.end);
  return crypto.createPublicKey({ key: der.subarray(spki.start, spki.end), format: 'der', type: 'spki' });
}

/**
 * Reads what an issuer returned (node's native X.509 parser: no library cost on
 * the hot path). With a CSR, also checks that the certificate is for the CSR's key:
 * an issuer that certifies some other key is broken, and that is refused.
 */
export function parseIssued(certificatePem: string, chainPem: readonly string[], csrPem?: string): IssuedLeaf {
  const [leafPem, ...bundled] = blocks(certificatePem);
  if (!leafPem) throw new Error('the issuer returned no PEM certificate');
  const leaf = new crypto.X509Certificate(leafPem);
  if (csrPem) {
    const want = csrPublicKey(csrPem).export({ type: 'spki', format: 'der' });
    const got = leaf.publicKey.export({ type: 'spki', format: 'der' });
    if (!want.equals(got)) throw new Error('the issued certificate is not for the CSR\'s public key');
  }
  const chain = [...bundled, ...chainPem.flatMap(blocks)];
  const key = describePublicKey(leaf.publicKey.export({ type: 'spki', format: 'der' }));
  return {
    pemChain: [leafPem, ...chain].join(''),
    serialNumber: leaf.serialNumber.toLowerCase(),
    fingerprintSha256: leaf.fingerprint256.replace(/:/g, '').toLowerCase(),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    keyAlgorithm: keyAlgorithmName(key),
    keySize: key.keySize,
  };
}
