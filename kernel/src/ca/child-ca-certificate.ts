import crypto, { type webcrypto } from 'node:crypto';
import type { CaKeyAlgorithm } from '@certctl/sdk';
import { x509 } from '../crypto/x509-setup.js';
import { BACKDATE_MS, caExtensions, caPems, generateCaKeys, parseSubject } from './ca-certificate.js';
import { CaError } from './ca-errors.js';
import { encodeNameConstraints, hasConstraints, type NameConstraints } from './name-constraints.js';

export interface ChildCaSpec {
  subject: string;
  keyAlgorithm: CaKeyAlgorithm;
  notAfter: number;
  pathLength?: number;
  nameConstraints: NameConstraints;
  serialNumberHex: string;
  /** The parent's CRL (CRL distribution point of the child), when a public URL is configured. */
  crlUrl?: string;
  now: number;
}

/** How the parent's key signs: the WebCrypto import and signature parameters for its type. */
function signerFor(key: crypto.KeyObject): { importAlg: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams | webcrypto.Algorithm; sign: webcrypto.Algorithm | webcrypto.EcdsaParams } {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5' } };
    case 'ec': {
      const curve = ({ prime256v1: ['P-256', 'SHA-256'], secp384r1: ['P-384', 'SHA-384'], secp521r1: ['P-521', 'SHA-512'] } as Record<string, [string, string]>)[d.namedCurve ?? ''];
      if (!curve) break;
      return { importAlg: { name: 'ECDSA', namedCurve: curve[0] }, sign: { name: 'ECDSA', hash: curve[1] } as webcrypto.EcdsaParams };
    }
    case 'ed25519':
      return { importAlg: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
  }
  throw new CaError('ca_invalid', `the parent CA's key (${key.asymmetricKeyType ?? 'unknown'}) cannot sign CA certificates here`);
}

/**
 * A new CA key and its certificate signed by the parent CA: the CA extensions
 * (caExtensions: BasicConstraints, KeyUsage, SKI), AKI (the parent's SKI), NameConstraints
 * (critical, RFC 5280 4.2.1.10) when given, and the parent's CRL as distribution
 * point. The issuer name is the parent's subject as encoded in its certificate,
 * byte for byte, so name chaining never depends on re-encoding a string.
 * Runs on the rare CA creation, so it uses the general library, not the pool.
 */
export async function generateChildCa(parentPem: string, parentKeyPem: string, spec: ChildCaSpec): Promise<{ certificatePem: string; keyPem: string }> {
  const subject = parseSubject(spec.subject);
  const parent = new x509.X509Certificate(parentPem);
  const parentKey = crypto.createPrivateKey(parentKeyPem);
  const signer = signerFor(parentKey);
  const signingKey = await crypto.webcrypto.subtle.importKey('pkcs8', parentKey.export({ format: 'der', type: 'pkcs8' }), signer.importAlg, false, ['sign']);
  const keys = await generateCaKeys(spec.keyAlgorithm);
  const parentSki = parent.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const extensions: x509.Extension[] = [
    ...(await caExtensions(keys.publicKey, spec.pathLength)),
    parentSki ? new x509.AuthorityKeyIdentifierExtension(parentSki, false) : await x509.AuthorityKeyIdentifierExtension.create(parent as never, false),
  ];
  if (hasConstraints(spec.nameConstraints)) {
    const der = encodeNameConstraints(spec.nameConstraints);
    extensions.push(new x509.Extension('2.5.29.30', true, new Uint8Array(der).buffer));
  }
  if (spec.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([spec.crlUrl]));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: spec.serialNumberHex,
    subject,
    issuer: parent.subjectName,
    notBefore: new Date(Math.max(spec.now - BACKDATE_MS, parent.notBefore.getTime())),
    notAfter: new Date(spec.notAfter),
    publicKey: keys.publicKey as never,
    signingKey: signingKey as never,
    signingAlgorithm: signer.sign as never,
    extensions,
  });
  return caPems(cert, keys);
}
