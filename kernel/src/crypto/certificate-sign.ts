import crypto from 'node:crypto';
import net from 'node:net';
import { CryptoError, EXTENDED_KEY_USAGES, KEY_USAGES, type CertificateExtensionsSpec, type SignCertificateRequest, type SignedCertificate } from './crypto-types.js';
import { verifyCsr } from './csr-verify.js';
import { x509 } from './x509-setup.js';
import { normalizeSerial, parseDate } from './sign-params.js';
import { signLeafFast } from './certificate-sign-fast.js';

type SigningAlgorithm = { importAlg: Record<string, unknown>; signAlg: Record<string, unknown> };

/** The WebCrypto algorithm to sign with, from the issuer key's type (hash sized to the curve). */
function signingAlgorithmFor(key: crypto.KeyObject): SigningAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const map: Record<string, [string, string]> = { prime256v1: ['P-256', 'SHA-256'], secp384r1: ['P-384', 'SHA-384'], secp521r1: ['P-521', 'SHA-512'] };
      const m = curve ? map[curve] : undefined;
      if (!m) throw new CryptoError('issuer_invalid', `issuer key curve ${curve ?? 'unknown'} is not supported (P-256, P-384, P-521)`);
      return { importAlg: { name: 'ECDSA', namedCurve: m[0] }, signAlg: { name: 'ECDSA', hash: m[1] } };
    }
    case 'ed25519':
      return { importAlg: { name: 'Ed25519' }, signAlg: { name: 'Ed25519' } };
    default:
      throw new CryptoError('issuer_invalid', `issuer key type ${key.asymmetricKeyType ?? 'unknown'} is not supported (RSA, ECDSA, Ed25519)`);
  }
}

/** A SAN string as a GeneralName: IP literal, email, URI (has a scheme) or DNS name. */
export function generalNameFor(value: string): { type: 'ip' | 'email' | 'url' | 'dns'; value: string } {
  if (net.isIP(value)) return { type: 'ip', value };
  if (/^[^@\s]+@[^@\s]+$/.test(value)) return { type: 'email', value };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return { type: 'url', value };
  if (!/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(value)) throw new CryptoError('bad_request', `SAN ${JSON.stringify(value).slice(0, 100)} is not a DNS name, IP address, email or URI`);
  return { type: 'dns', value };
}

function keyUsageFlags(names: readonly string[]): number {
  let flags = 0;
  for (const n of names) {
    const i = KEY_USAGES.indexOf(n as (typeof KEY_USAGES)[number]);
    if (i < 0) throw new CryptoError('bad_request', `unknown keyUsage ${JSON.stringify(n)} (use ${KEY_USAGES.join(', ')})`);
    flags |= 1 << i;
  }
  return flags;
}

function ekuOids(names: readonly string[]): string[] {
  return names.map((n) => {
    if (Object.hasOwn(EXTENDED_KEY_USAGES, n)) return EXTENDED_KEY_USAGES[n as keyof typeof EXTENDED_KEY_USAGES];
    if (/^\d+(\.\d+)+$/.test(n)) return n;
    throw new CryptoError('bad_request', `unknown extendedKeyUsage ${JSON.stringify(n)} (use ${Object.keys(EXTENDED_KEY_USAGES).join(', ')} or an OID)`);
  });
}

async function buildExtensions(spec: CertificateExtensionsSpec, opts: { sans: string[]; subjectKey: x509.PublicKey; issuer: x509.X509Certificate; subjectKeyType: string }): Promise<x509.Extension[]> {
  const exts: x509.Extension[] = [];
  const bc = spec.basicConstraints ?? { ca: false };
  if (bc.pathLength !== undefined && (!bc.ca || !Number.isInteger(bc.pathLength) || bc.pathLength < 0)) throw new CryptoError('bad_request', 'basicConstraints.pathLength needs ca: true and a whole number >= 0');
  exts.push(new x509.BasicConstraintsExtension(Boolean(bc.ca), bc.pathLength, true));
  const defaultUsage = bc.ca ? ['digitalSignature', 'keyCertSign', 'cRLSign'] : opts.subjectKeyType === 'RSA' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'];
  exts.push(new x509.KeyUsagesExtension(keyUsageFlags(spec.keyUsage ?? defaultUsage), true));
  if (spec.extendedKeyUsage?.length) exts.push(new x509.ExtendedKeyUsageExtension(ekuOids(spec.extendedKeyUsage), false));
  if (opts.sans.length) exts.push(new x509.SubjectAlternativeNameExtension(opts.sans.map(generalNameFor), false));
  if (spec.subjectKeyIdentifier !== false) exts.push(await x509.SubjectKeyIdentifierExtension.create(opts.subjectKey, false));
  if (spec.authorityKeyIdentifier !== false) {
    const issuerSki = opts.issuer.getExtension(x509.SubjectKeyIdentifierExtension);
    exts.push(issuerSki ? new x509.AuthorityKeyIdentifierExtension(issuerSki.keyId, false) : await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.publicKey, false));
  }
  if (spec.crlDistributionPoints?.length) exts.push(new x509.CRLDistributionPointsExtension(spec.crlDistributionPoints, false));
  const aia = spec.authorityInfoAccess;
  if (aia && (aia.ocsp?.length || aia.caIssuers?.length)) {
    exts.push(new x509.AuthorityInfoAccessExtension({ ...(aia.ocsp?.length ? { ocsp: aia.ocsp } : {}), ...(aia.caIssuers?.length ? { caIssuers: aia.caIssuers } : {}) }, false));
  }
  return exts;
}

/**
 * Signs a certificate for a CSR with an issuer certificate and key. The CSR's
 * self-signature is checked first; the issuer key must match the issuer
 * certificate; the subject and SANs come from the CSR unless overridden; the
 * extensions are exactly the ones asked for (with safe defaults).
 */
export async function signCertificate(req: SignCertificateRequest, csrVerified = false): Promise<SignedCertificate> {
  if (!req || typeof req !== 'object') throw new CryptoError('bad_request', 'signCertificate expects a request object');
  // Leaves in the common shapes take the DER template path; everything else, and every
  // refusal's wording, comes from the general library.
  return (await signLeafFast(req, csrVerified)) ?? signWithLibrary(req);
}

/** The general path (@peculiar/x509): any certificate shape; tests hold the template path to its bytes. */
export async function signWithLibrary(req: SignCertificateRequest): Promise<SignedCertificate> {
  const csrInfo = await verifyCsr(req.csrPem);
  if (!csrInfo.valid) throw new CryptoError('csr_invalid', csrInfo.reason ?? 'the CSR is not valid');
  const csr = new x509.Pkcs10CertificateRequest(req.csrPem.replace(/NEW CERTIFICATE REQUEST/g, 'CERTIFICATE REQUEST'));

  let issuer: x509.X509Certificate;
  try {
    issuer = new x509.X509Certificate(req.issuerCertPem);
  } catch (err) {
    throw new CryptoError('issuer_invalid', `the issuer certificate cannot be parsed: ${(err as Error).message}`);
  }
  let issuerKey: crypto.KeyObject;
  try {
    issuerKey = crypto.createPrivateKey(req.issuerKeyPem);
  } catch (err) {
    throw new CryptoError('issuer_invalid', `the issuer key cannot be parsed: ${(err as Error).message}`);
  }
  const issuerSpki = Buffer.from(issuer.publicKey.rawData);
  const keySpki = crypto.createPublicKey(issuerKey).export({ format: 'der', type: 'spki' });
  if (!issuerSpki.equals(keySpki)) throw new CryptoError('key_mismatch', 'the issuer key does not belong to the issuer certificate');

  const notBefore = parseDate(req.notBefore, 'notBefore');
  const notAfter = parseDate(req.notAfter, 'notAfter');
  if (notAfter <= notBefore) throw new CryptoError('bad_request', 'notAfter must be after notBefore');
  if (!req.allowBeyondIssuer && notAfter > issuer.notAfter) throw new CryptoError('bad_request', `notAfter ${notAfter.toISOString()} is past the issuer certificate's expiry ${issuer.notAfter.toISOString()}`);
  const serialNumber = normalizeSerial(req.serialNumberHex);

  const alg = signingAlgorithmFor(issuerKey);
  const pkcs8 = issuerKey.export({ format: 'der', type: 'pkcs8' });
  const signingKey = await crypto.webcrypto.subtle.importKey('pkcs8', pkcs8, alg.importAlg as never, false, ['sign']);

  let subject: string | x509.Name = csr.subjectName;
  if (req.subject !== undefined) {
    try {
      subject = new x509.Name(req.subject);
    } catch (err) {
      throw new CryptoError('bad_request', `subject ${JSON.stringify(req.subject).slice(0, 100)} is not a distinguished name: ${(err as Error).message}`);
    }
  }
  const sans = req.sans ?? csrInfo.sans;
  const extensions = await buildExtensions(req.extensions ?? {}, { sans, subjectKey: csr.publicKey, issuer, subjectKeyType: csrInfo.publicKeyAlgorithm });

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: subject as never,
    issuer: issuer.subjectName as never,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: signingKey as never,
    signingAlgorithm: alg.signAlg as never,
    extensions,
  });
  const pem = cert.toString('pem');
  return {
    certificatePem: pem.endsWith('\n') ? pem : `${pem}\n`,
    serialNumberHex: cert.serialNumber,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    fingerprintSha256: crypto.createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
  };
}
