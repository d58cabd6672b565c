import crypto from 'node:crypto';
import type { CsrInfo } from '../crypto/crypto-types.js';
import { bytesOf, children, contentOf, expectTag, pemCertificates, pemToDer, readTlv } from '../crypto/der.js';
import { describePublicKey } from '../crypto/public-key.js';
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

/** The SubjectPublicKeyInfo DER of a PKCS#10 request (request -> info -> version, subject, spki). */
function csrSpki(csrPem: string): Buffer {
  const der = pemToDer(csrPem, /(NEW )?CERTIFICATE REQUEST/);
  const request = readTlv(der, 0);
  const info = readTlv(der, request.contentStart, request.end);
  const version = readTlv(der, info.contentStart, info.end);
  const subject = readTlv(der, version.end, info.end);
  return bytesOf(der, readTlv(der, subject.end, info.end));
}

/** The SubjectPublicKeyInfo of a PKCS#10 request, as a key. */
function csrPublicKey(csrPem: string): crypto.KeyObject {
  return crypto.createPublicKey({ key: csrSpki(csrPem), format: 'der', type: 'spki' });
}

/** UTCTime (YYMMDDHHMMSSZ, 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ), the forms RFC 5280 allows. */
function x509Date(tag: number, text: string): Date {
  const m = (tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/).exec(text);
  if (!m || (tag !== 0x17 && tag !== 0x18)) throw new Error('unexpected time encoding');
  const year = tag === 0x17 ? (Number(m[1]) < 50 ? 2000 : 1900) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/**
 * The fields the inventory keeps, read straight from the certificate's DER (the
 * hot path: node's X509Certificate plus key objects cost more than the signature).
 * Throws on any shape it does not expect; the caller then uses node's parser.
 */
function readLeaf(der: Buffer): { serial: Buffer; notBefore: Date; notAfter: Date; spki: Buffer } {
  const cert = expectTag(readTlv(der, 0), 0x30, 'certificate');
  if (cert.end !== der.length) throw new Error('trailing bytes');
  const [tbs, sigAlg, sig, ...extra] = children(der, cert);
  if (extra.length || !tbs || !sigAlg || !sig) throw new Error('not a certificate');
  expectTag(tbs, 0x30, 'tbsCertificate');
  expectTag(sigAlg, 0x30, 'signatureAlgorithm');
  expectTag(sig, 0x03, 'signature');
  const f = children(der, tbs);
  const at = f[0]?.tag === 0xa0 ? 1 : 0;
  const [serial, alg, issuer, validity, subject, spki] = f.slice(at, at + 6);
  if (!spki) throw new Error('short tbsCertificate');
  expectTag(serial, 0x02, 'serialNumber');
  [alg, issuer, validity, subject, spki].forEach((t) => expectTag(t, 0x30, 'tbsCertificate field'));
  const [nb, na, ...more] = children(der, validity);
  if (!na || more.length) throw new Error('bad validity');
  const time = (t: typeof nb) => x509Date(t.tag, contentOf(der, t).toString('latin1'));
  return { serial: contentOf(der, serial), notBefore: time(nb), notAfter: time(na), spki: bytesOf(der, spki) };
}

/** As node's X509Certificate shows a serial: upper-case hex of the magnitude, a DER sign byte dropped. */
function serialHex(content: Buffer): string {
  const body = content.length > 1 && content[0] === 0 ? content.subarray(1) : content;
  return body.toString('hex');
}

/** What verifyCsr said about the CSR's key. */
export type KeyDescription = Pick<CsrInfo, 'publicKeyAlgorithm' | 'keySize'>;

/**
 * Reads what an issuer returned (node's native X.509 parser: no library cost on
 * the hot path). With a CSR, also checks that the certificate is for the CSR's key:
 * an issuer that certifies some other key is broken, and that is refused. Returns the
 * leaf's DER beside it, for the grants check (issuance-leaf-check.ts) to read as is.
 */
export function parseIssued(certificatePem: string, chainPem: readonly string[], csrPem?: string, csrKey?: KeyDescription): { leaf: IssuedLeaf; der: Buffer } {
  const [leafPem, ...bundled] = pemCertificates(certificatePem);
  if (!leafPem) throw new Error('the issuer returned no PEM certificate');
  const chain = [...bundled, ...chainPem.flatMap(pemCertificates)];
  const der = pemToDer(leafPem, /CERTIFICATE/);
  let fields: ReturnType<typeof readLeaf> | null = null;
  try {
    fields = readLeaf(der);
  } catch {
    fields = null;
  }
  // The common case: the certificate carries the CSR's key encoded byte for byte as the CSR did.
  if (fields && csrPem && !fields.spki.equals(csrSpki(csrPem))) fields = null;
  if (!fields) return { leaf: parseWithNode(leafPem, chain, csrPem), der };
  // The same key bytes as the (verified) CSR: its description is the CSR's, without building a key object.
  const key = csrPem && csrKey ? csrKey : describePublicKey(fields.spki);
  return {
    leaf: {
      pemChain: [leafPem, ...chain].join(''),
      serialNumber: serialHex(fields.serial),
      fingerprintSha256: crypto.createHash('sha256').update(der).digest('hex'),
      notBefore: fields.notBefore,
      notAfter: fields.notAfter,
      keyAlgorithm: keyAlgorithmName(key),
      keySize: key.keySize,
    },
    der,
  };
}

/** The general path: node's X.509 parser, and the keys compared as keys (another encoding of the same key passes). */
function parseWithNode(leafPem: string, chain: string[], csrPem?: string): IssuedLeaf {
  const leaf = new crypto.X509Certificate(leafPem);
  const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  if (csrPem && !csrPublicKey(csrPem).equals(leaf.publicKey)) throw new Error('the issued certificate is not for the CSR\'s public key');
  const key = describePublicKey(spki);
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
