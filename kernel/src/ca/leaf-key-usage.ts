import crypto from 'node:crypto';
import type { KeyUsageName } from '../crypto/crypto-types.js';
import { bytesOf, children, contentOf, expectTag, pemToDer, readTlv } from '../crypto/der.js';

/** SubjectPublicKeyInfo algorithm OIDs (content bytes, hex) -> node's asymmetricKeyType. */
const KEY_TYPE_BY_OID = new Map([
  ['2a864886f70d010101', 'rsa'], // 1.2.840.113549.1.1.1 rsaEncryption
  ['2a864886f70d01010a', 'rsa-pss'], // 1.2.840.113549.1.1.10 id-RSASSA-PSS
  ['2a8648ce3d0201', 'ec'], // 1.2.840.10045.2.1 id-ecPublicKey
  ['2b6570', 'ed25519'], // 1.3.101.112
  ['2b6571', 'ed448'], // 1.3.101.113
]);

/**
 * The key type of a CSR's subject public key ('rsa', 'ec', 'ed25519', ...), or
 * null when the CSR cannot be read (signing then refuses it with the reason).
 * A few DER steps (CertificationRequest > CertificationRequestInfo > version,
 * subject, SubjectPublicKeyInfo) instead of a full parse keep this off the hot path;
 * the CSR is parsed and its signature verified properly in the crypto pool.
 */
export function csrKeyType(csrPem: string): string | null {
  try {
    const der = pemToDer(csrPem, /(NEW )?CERTIFICATE REQUEST/);
    const [info] = children(der, expectTag(readTlv(der, 0), 0x30, 'CertificationRequest'));
    const spki = expectTag(children(der, expectTag(info, 0x30, 'CertificationRequestInfo'))[2], 0x30, 'SubjectPublicKeyInfo');
    // The algorithm OID names the common key types (building a key object costs more than the signature).
    const [alg] = children(der, spki);
    const algOid = alg.tag === 0x30 ? readTlv(der, alg.contentStart, alg.end) : null;
    const known = algOid?.tag === 0x06 ? KEY_TYPE_BY_OID.get(contentOf(der, algOid).toString('hex')) : undefined;
    if (known) return known;
    return crypto.createPublicKey({ key: bytesOf(der, spki), format: 'der', type: 'spki' }).asymmetricKeyType ?? null;
  } catch {
    return null;
  }
}

/**
 * KeyUsage for a leaf when the request names none, from its key and EKUs:
 * always digitalSignature; an RSA key used for TLS server auth (or S/MIME) also
 * gets keyEncipherment (RSA key transport); S/MIME (emailProtection) adds
 * nonRepudiation (contentCommitment) for signed mail and, for EC keys,
 * keyAgreement (ECDH key agreement for encrypted mail).
 */
export function adaptiveKeyUsage(keyType: string | null, ekus: readonly string[]): KeyUsageName[] {
  const rsa = keyType === 'rsa' || keyType === 'rsa-pss';
  const has = (name: string, oid: string) => ekus.includes(name) || ekus.includes(oid);
  const server = has('serverAuth', '1.3.6.1.5.5.7.3.1');
  const email = has('emailProtection', '1.3.6.1.5.5.7.3.4');
  const usage: KeyUsageName[] = ['digitalSignature'];
  if (email) usage.push('nonRepudiation');
  if (rsa && (server || email)) usage.push('keyEncipherment');
  if (email && keyType === 'ec') usage.push('keyAgreement');
  return usage;
}
