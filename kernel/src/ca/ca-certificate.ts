import crypto, { type webcrypto } from 'node:crypto';
import type { CaKeyAlgorithm } from '@certctl/sdk';
import { derToPem } from '../crypto/der.js';
import { x509 } from '../crypto/x509-setup.js';
import { CaError } from './ca-errors.js';

/** What the keystore records about a CA certificate. */
export interface CaCertificateFacts {
  subject: string;
  serialNumber: string;
  subjectKeyId: string | null;
  fingerprintSha256: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  pathLength: number | undefined;
  keyCertSign: boolean;
  /** Whether the KeyUsage extension is there at all (RFC 5280: without it, every usage is allowed). */
  hasKeyUsage: boolean;
  /** SubjectPublicKeyInfo, DER: compared with a key to prove they belong together. */
  spki: Buffer;
}

export function certificateFacts(pem: string): CaCertificateFacts {
  const cert = new x509.X509Certificate(pem);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    subject: cert.subject,
    serialNumber: cert.serialNumber.toLowerCase(),
    subjectKeyId: ski?.keyId.toLowerCase() ?? null,
    fingerprintSha256: crypto.createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCa: Boolean(bc?.ca),
    pathLength: bc?.pathLength,
    keyCertSign: Boolean(ku && (ku.usages & x509.KeyUsageFlags.keyCertSign)),
    hasKeyUsage: Boolean(ku),
    spki: Buffer.from(cert.publicKey.rawData),
  };
}

/** The keystore's name for a key's type and size ('ECDSA-P256', 'RSA-3072', 'Ed25519'), or null if it cannot sign certificates here. */
export function keyAlgorithmOf(key: crypto.KeyObject): string | null {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return (d.modulusLength ?? 0) >= 2048 ? `RSA-${d.modulusLength}` : null;
    case 'ec':
      return ({ prime256v1: 'ECDSA-P256', secp384r1: 'ECDSA-P384', secp521r1: 'ECDSA-P521' } as Record<string, string>)[d.namedCurve ?? ''] ?? null;
    case 'ed25519':
      return 'Ed25519';
    default:
      return null;
  }
}

const GENERATE: Record<CaKeyAlgorithm, { key: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams; sign: webcrypto.Algorithm | webcrypto.EcdsaParams }> = {
  'ECDSA-P256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams },
  'ECDSA-P384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams },
  'RSA-2048': { key: rsa(2048), sign: { name: 'RSASSA-PKCS1-v1_5' } },
  'RSA-3072': { key: rsa(3072), sign: { name: 'RSASSA-PKCS1-v1_5' } },
  'RSA-4096': { key: rsa(4096), sign: { name: 'RSASSA-PKCS1-v1_5' } },
};

function rsa(modulusLength: number): webcrypto.RsaHashedKeyGenParams {
  return { name: 'RSASSA-PKCS1-v1_5', modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
}

/** A fresh, exportable CA key pair of the asked type. */
export async function generateCaKeys(keyAlgorithm: CaKeyAlgorithm): Promise<webcrypto.CryptoKeyPair> {
  return (await crypto.webcrypto.subtle.generateKey(GENERATE[keyAlgorithm].key, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** Clock skew allowance: a new CA (and a leaf) is valid from a minute ago. */
export const BACKDATE_MS = 60_000;

/** A CA subject as a Name; CaError `bad_request` naming `what` when it is not a distinguished name. */
export function parseSubject(text: string, what = 'subject'): x509.Name {
  let name: x509.Name;
  try {
    name = new x509.Name(text);
  } catch (err) {
    throw new CaError('bad_request', `${what} ${JSON.stringify(text.slice(0, 100))} is not a distinguished name: ${(err as Error).message}`);
  }
  if (!name.toJSON().length) throw new CaError('bad_request', `${what} ${JSON.stringify(text.slice(0, 100))} is not a distinguished name (e.g. CN=Acme Issuing CA 1, O=Acme)`);
  return name;
}

/**
 * The extensions every CA certificate made here carries: BasicConstraints CA:TRUE
 * (critical, with the path length when given), KeyUsage keyCertSign + cRLSign +
 * digitalSignature (critical) and the SKI of the new key.
 */
export async function caExtensions(publicKey: webcrypto.CryptoKey, pathLength: number | undefined): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey as never, false),
  ];
}

/** The new CA's certificate (ending in a newline) and its private key, both PEM. */
export async function caPems(cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair): Promise<{ certificatePem: string; keyPem: string }> {
  const pkcs8 = Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const pem = cert.toString('pem');
  return { certificatePem: pem.endsWith('\n') ? pem : `${pem}\n`, keyPem: derToPem(pkcs8, 'PRIVATE KEY') };
}

/**
 * A new self-signed root: a fresh key of the asked type and a certificate with
 * the CA extensions (caExtensions) and an AKI.
 * Runs once per issuer, so it uses the general library rather than the pool's fast path.
 */
export async function generateRootCa(opts: { subject: string; keyAlgorithm: CaKeyAlgorithm; validityDays: number; pathLength?: number; serialNumberHex: string; now?: number }): Promise<{ certificatePem: string; keyPem: string }> {
  const name = parseSubject(opts.subject, 'CA subject');
  const alg = GENERATE[opts.keyAlgorithm];
  const keys = await generateCaKeys(opts.keyAlgorithm);
  const now = opts.now ?? Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: opts.serialNumberHex,
    name,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + opts.validityDays * 86_400_000),
    keys: keys as never,
    signingAlgorithm: alg.sign as never,
    extensions: [
      ...(await caExtensions(keys.publicKey, opts.pathLength)),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey as never, false),
    ],
  });
  return caPems(cert, keys);
}
