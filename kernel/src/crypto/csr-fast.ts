import crypto from 'node:crypto';
import type { CsrInfo } from './crypto-types.js';
import { bytesOf, children, contentOf, DerError, expectTag, oidToString, pemToDer, readTlv, type Tlv } from './der.js';
import { describePublicKey } from './public-key.js';
import { describeSpkiFast, publicKeyFromSpki } from './spki-fast.js';

/**
 * The hot-path CSR reader: walks the PKCS#10 DER by offset and checks the
 * self-signature with node:crypto, about ten times faster than the general
 * library. It reads only the common shapes (UTF8/Printable/IA5 name values,
 * DNS/IPv4/email/URI SANs, RSA PKCS#1, ECDSA and Ed25519 signatures) and
 * answers null for anything else, so the caller falls back to the library and
 * results never differ (certificate-fast.test.ts compares the two).
 */

export interface ParsedCsr {
  /** CertificationRequestInfo, the signed bytes. */
  cri: Buffer;
  subjectDer: Buffer;
  spkiDer: Buffer;
  /** The subjectPublicKey BIT STRING's key bytes (for the SKI). */
  publicKeyBits: Buffer;
  sans: string[];
  subject: string;
  signatureOid: string;
  signature: Buffer;
}

const SIG_ALGS: Record<string, { hash: string | null; name: string }> = {
  '1.2.840.10045.4.3.2': { hash: 'sha256', name: 'ecdsa-with-SHA256' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', name: 'ecdsa-with-SHA384' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', name: 'ecdsa-with-SHA512' },
  '1.2.840.113549.1.1.11': { hash: 'sha256', name: 'sha256WithRSAEncryption' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', name: 'sha384WithRSAEncryption' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', name: 'sha512WithRSAEncryption' },
  '1.3.101.112': { hash: null, name: 'ED25519' },
};

const NAME_LABELS: Record<string, string> = {
  '2.5.4.3': 'CN', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC', '1.2.840.113549.1.9.1': 'E', '2.5.4.42': 'G', '2.5.4.43': 'I', '2.5.4.4': 'SN', '2.5.4.12': 'T',
};

/** RFC 4514 escaping exactly as the general library renders names (so both paths agree). */
function escapeValue(v: string): string {
  return v
    .replace(/([,+"\\<>;])/g, '\\$1')
    .replace(/^([ #])/, '\\$1')
    .replace(/([ ]$)/, '\\$1')
    .replace(/([\r\n\t])/, (c) => `\\${Buffer.from(c, 'utf8').toString('hex').toUpperCase()}`);
}

/** Name -> "CN=a, O=b"; null for value types the fast path does not render. */
function nameToString(buf: Buffer, name: Tlv): string | null {
  const rdns: string[] = [];
  for (const rdn of children(buf, expectTag(name, 0x30, 'Name'))) {
    const parts: string[] = [];
    for (const atv of children(buf, expectTag(rdn, 0x31, 'RDN'))) {
      const [type, value] = children(buf, expectTag(atv, 0x30, 'AttributeTypeAndValue'));
      if (!type || !value) throw new DerError('AttributeTypeAndValue is incomplete');
      const oid = oidToString(contentOf(buf, expectTag(type, 0x06, 'attribute type')));
      const raw = contentOf(buf, value);
      let text: string;
      if (value.tag === 0x0c) text = raw.toString('utf8');
      else if (value.tag === 0x13 || value.tag === 0x16) text = raw.toString('latin1');
      else return null;
      parts.push(`${NAME_LABELS[oid] ?? oid}=${escapeValue(text)}`);
    }
    rdns.push(parts.join('+'));
  }
  return rdns.join(', ');
}

/** GeneralNames -> SAN strings; null when a name form needs the library (IPv6, other names). */
function sanStrings(buf: Buffer, names: Tlv): string[] | null {
  const out: string[] = [];
  for (const gn of children(buf, expectTag(names, 0x30, 'GeneralNames'))) {
    const raw = contentOf(buf, gn);
    switch (gn.tag) {
      case 0x82: out.push(raw.toString('latin1')); break; // dNSName
      case 0x81: out.push(raw.toString('latin1')); break; // rfc822Name
      case 0x86: out.push(raw.toString('latin1')); break; // URI
      case 0x87:
        if (raw.length !== 4) return null;
        out.push(Array.from(raw).join('.'));
        break;
      default:
        return null;
    }
  }
  return out;
}

function requestedSans(buf: Buffer, attributes: Tlv | undefined): string[] | null {
  if (!attributes) return [];
  for (const attr of children(buf, attributes)) {
    const [type, values] = children(buf, expectTag(attr, 0x30, 'Attribute'));
    if (oidToString(contentOf(buf, type)) !== '1.2.840.113549.1.9.14') continue;
    const [extensions] = children(buf, expectTag(values, 0x31, 'attribute values'));
    for (const ext of children(buf, expectTag(extensions, 0x30, 'Extensions'))) {
      const parts = children(buf, expectTag(ext, 0x30, 'Extension'));
      if (oidToString(contentOf(buf, parts[0])) !== '2.5.29.17') continue;
      const value = expectTag(parts[parts.length - 1], 0x04, 'extnValue');
      return sanStrings(buf, readTlv(buf, value.contentStart, value.end));
    }
  }
  return [];
}

/** Parses a CSR's DER; null when it has a shape only the library reads. Throws DerError on malformed DER. */
export function parseCsrFast(der: Buffer): ParsedCsr | null {
  const outer = expectTag(readTlv(der, 0), 0x30, 'CertificationRequest');
  if (outer.end !== der.length) throw new DerError('trailing bytes after the CSR');
  const [criT, algT, sigT] = children(der, outer);
  if (!criT || !algT || !sigT) throw new DerError('CertificationRequest is incomplete');
  const [version, subjectT, spkiT, attrsT] = children(der, expectTag(criT, 0x30, 'CertificationRequestInfo'));
  if (!version || !subjectT || !spkiT) throw new DerError('CertificationRequestInfo is incomplete');
  if (attrsT && attrsT.tag !== 0xa0) return null;
  const signatureOid = oidToString(contentOf(der, children(der, expectTag(algT, 0x30, 'AlgorithmIdentifier'))[0]));
  if (!SIG_ALGS[signatureOid]) return null;
  const sigBits = contentOf(der, expectTag(sigT, 0x03, 'signature'));
  if (sigBits[0] !== 0) return null;
  const [, keyBitsT] = children(der, expectTag(spkiT, 0x30, 'SubjectPublicKeyInfo'));
  const keyBits = contentOf(der, expectTag(keyBitsT, 0x03, 'subjectPublicKey'));
  if (keyBits[0] !== 0) return null;
  const subject = nameToString(der, subjectT);
  const sans = requestedSans(der, attrsT);
  if (subject === null || sans === null) return null;
  return {
    cri: bytesOf(der, criT),
    subjectDer: bytesOf(der, subjectT),
    spkiDer: bytesOf(der, spkiT),
    publicKeyBits: keyBits.subarray(1),
    sans,
    subject,
    signatureOid,
    signature: sigBits.subarray(1),
  };
}

function parseInput(input: string | Uint8Array): ParsedCsr | null {
  try {
    return parseCsrFast(typeof input === 'string' ? pemToDer(input, /(NEW )?CERTIFICATE REQUEST/) : Buffer.from(input));
  } catch {
    return null;
  }
}

/**
 * verifyCsr's fast twin: the same CsrInfo, or null when the library must decide
 * (unusual shapes, or anything the fast reader cannot vouch for).
 */
export async function verifyCsrFast(input: string | Uint8Array): Promise<{ info: CsrInfo; parsed: ParsedCsr } | null> {
  const parsed = parseInput(input);
  if (!parsed) return null;
  const alg = SIG_ALGS[parsed.signatureOid];
  let key: crypto.KeyObject;
  let ok: boolean;
  try {
    key = await publicKeyFromSpki(parsed.spkiDer);
    if (alg.hash === null && key.asymmetricKeyType !== 'ed25519') return null;
    ok = crypto.verify(alg.hash, parsed.cri, key, parsed.signature);
  } catch {
    return null;
  }
  // A bad signature is worth a second opinion: the library words the refusal.
  if (!ok) return null;
  return { info: { valid: true, subject: parsed.subject, sans: parsed.sans, ...(describeSpkiFast(parsed.spkiDer) ?? describePublicKey(key)), signatureAlgorithm: alg.name }, parsed };
}

/**
 * The same reading without the signature check, for a CSR whose exact bytes
 * this kernel has verified already (CryptoService remembers them): signing
 * right after the check need not pay for it twice.
 */
export function readVerifiedCsrFast(input: string | Uint8Array): { info: CsrInfo; parsed: ParsedCsr } | null {
  const parsed = parseInput(input);
  if (!parsed) return null;
  const alg = SIG_ALGS[parsed.signatureOid];
  const described = describeSpkiFast(parsed.spkiDer);
  // Ed25519 signatures need an Ed25519 key; anything unusual takes the verifying path.
  if (!described || (alg.hash === null) !== (described.publicKeyAlgorithm === 'Ed25519')) return null;
  return { info: { valid: true, subject: parsed.subject, sans: parsed.sans, ...described, signatureAlgorithm: alg.name }, parsed };
}
