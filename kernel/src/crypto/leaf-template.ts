import crypto from 'node:crypto';
import net from 'node:net';
import { CryptoError, EXTENDED_KEY_USAGES, KEY_USAGES, type CertificateExtensionsSpec } from './crypto-types.js';
import {
  bitStringBytes, boolTrue, children, contentOf, explicit, implicitPrim, nullDer, octetString, oid, oidToString,
  pemToDer, readTlv, seq, smallInteger, tlv, uintegerFromBytes, x509Time, bytesOf, expectTag,
} from './der.js';

/**
 * Leaf certificates encoded directly to DER. The general library spends ~5 ms per
 * certificate building ASN.1 objects; a leaf is a fixed shape around a few
 * variable fields, so this writes those bytes itself (precomputing what depends
 * only on the issuer) and spends its time where it must: one signature.
 * certificate-fast.test.ts checks the output byte for byte against the library.
 */

/** What depends only on the issuer: computed once per (certificate, key) and cached. */
export interface IssuerTemplate {
  subjectDer: Buffer;
  /** The issuer's SKI, or the SHA-1 of its key (as the library does when it has none). */
  keyId: Buffer;
  notAfter: Date;
  signingKey: crypto.KeyObject;
  /** node:crypto digest for crypto.sign (null for Ed25519). */
  hash: string | null;
  algorithmIdentifier: Buffer;
}

const ALG_ECDSA: Record<string, [string, string]> = {
  prime256v1: ['sha256', '1.2.840.10045.4.3.2'],
  secp384r1: ['sha384', '1.2.840.10045.4.3.3'],
  secp521r1: ['sha512', '1.2.840.10045.4.3.4'],
};

/** Reads the issuer certificate once: subject bytes, key id, expiry, and checks the key belongs to it. */
export function buildIssuerTemplate(certDer: Buffer, key: crypto.KeyObject): IssuerTemplate {
  const cert = expectTag(readTlv(certDer, 0), 0x30, 'Certificate');
  const [tbsT] = children(certDer, cert);
  const fields = children(certDer, expectTag(tbsT, 0x30, 'TBSCertificate'));
  // version [0] is present on v3 certificates; shift the positional fields when it is not.
  const base = fields[0].tag === 0xa0 ? 1 : 0;
  const subjectT = fields[base + 4];
  const spkiT = fields[base + 5];
  const spkiDer = bytesOf(certDer, spkiT);
  const keySpki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  if (!keySpki.equals(spkiDer)) throw new CryptoError('key_mismatch', 'the issuer key does not belong to the issuer certificate');
  const [, keyBitsT] = children(certDer, spkiT);
  const keyBits = contentOf(certDer, keyBitsT).subarray(1);

  let keyId: Buffer | null = null;
  const extsT = fields.find((f) => f.tag === 0xa3);
  if (extsT) {
    const [list] = children(certDer, extsT);
    for (const ext of children(certDer, list)) {
      const parts = children(certDer, ext);
      if (oidToString(contentOf(certDer, parts[0])) !== '2.5.29.14') continue;
      const value = parts[parts.length - 1];
      keyId = contentOf(certDer, readTlv(certDer, value.contentStart, value.end));
    }
  }
  const notAfter = new Date(new crypto.X509Certificate(certDer).validTo);
  return {
    subjectDer: bytesOf(certDer, subjectT),
    keyId: keyId ?? crypto.createHash('sha1').update(keyBits).digest(),
    notAfter,
    signingKey: key,
    ...signatureAlgorithmOf(key),
  };
}

/** How a key signs: the node:crypto digest (null for Ed25519) and the AlgorithmIdentifier DER naming it. */
export function signatureAlgorithmOf(key: crypto.KeyObject): { hash: string | null; algorithmIdentifier: Buffer } {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { hash: 'sha256', algorithmIdentifier: seq(oid('1.2.840.113549.1.1.11'), nullDer) };
    case 'ec': {
      const m = ALG_ECDSA[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (!m) throw new CryptoError('issuer_invalid', `issuer key curve ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown'} is not supported (P-256, P-384, P-521)`);
      return { hash: m[0], algorithmIdentifier: seq(oid(m[1])) };
    }
    case 'ed25519':
      return { hash: null, algorithmIdentifier: seq(oid('1.3.101.112')) };
    default:
      throw new CryptoError('issuer_invalid', `issuer key type ${key.asymmetricKeyType ?? 'unknown'} is not supported (RSA, ECDSA, Ed25519)`);
  }
}

const ISSUER_CACHE_MAX = 32;
/** Per worker thread: parsed issuers with their imported keys, by a digest of (certificate, key) PEM. */
const issuers = new Map<string, IssuerTemplate>();

/** buildIssuerTemplate from PEM, remembered for the leaves, CRLs and responders the same CA signs next. */
export function issuerTemplateFor(certPem: string, keyPem: string): IssuerTemplate {
  const id = crypto.createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex');
  const hit = issuers.get(id);
  if (hit) {
    // Map order is insertion order: re-inserting keeps recently used issuers last.
    issuers.delete(id);
    issuers.set(id, hit);
    return hit;
  }
  const template = buildIssuerTemplate(pemToDer(certPem, /CERTIFICATE/), crypto.createPrivateKey(keyPem));
  issuers.set(id, template);
  if (issuers.size > ISSUER_CACHE_MAX) issuers.delete(issuers.keys().next().value!);
  return template;
}

// ---- extensions -------------------------------------------------------------

const ext = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [boolTrue] : []), octetString(value));

/** KeyUsage as a minimal DER BIT STRING (trailing zero bits dropped), as the library writes it. */
function keyUsageBits(names: readonly string[]): Buffer {
  let flags = 0;
  for (const n of names) {
    const i = KEY_USAGES.indexOf(n as (typeof KEY_USAGES)[number]);
    if (i < 0) throw new CryptoError('bad_request', `unknown keyUsage ${JSON.stringify(n)} (use ${KEY_USAGES.join(', ')})`);
    flags |= 1 << i;
  }
  if (!flags) return tlv(0x03, Buffer.from([0]));
  const bitLen = flags.toString(2).length;
  const octets = Math.ceil(bitLen / 8);
  const out = Buffer.alloc(octets);
  for (let i = 0; i < bitLen; i++) if (flags & (1 << i)) out[i >> 3] |= 0x80 >> (i & 7);
  return tlv(0x03, Buffer.concat([Buffer.from([octets * 8 - bitLen]), out]));
}

function ekuOid(name: string): string {
  if (Object.hasOwn(EXTENDED_KEY_USAGES, name)) return EXTENDED_KEY_USAGES[name as keyof typeof EXTENDED_KEY_USAGES];
  if (/^\d+(\.\d+)+$/.test(name)) return name;
  throw new CryptoError('bad_request', `unknown extendedKeyUsage ${JSON.stringify(name)} (use ${Object.keys(EXTENDED_KEY_USAGES).join(', ')} or an OID)`);
}

/** IPv4 or IPv6 text to address bytes. */
export function ipBytes(ip: string): Buffer {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  let text = ip;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail.push(...v4[1].split('.').map(Number));
    text = text.slice(0, -v4[1].length) + '0:0';
  }
  const [head, rest] = text.split('::');
  const groups = (s: string | undefined) => (s ? s.split(':').filter(Boolean).map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const r = groups(rest);
  const all = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill(0), ...r];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  if (tail.length) out.set(tail, 12);
  return out;
}

/** One SAN string as a GeneralName; the same classification as the library path (generalNameFor). */
function generalName(value: string): Buffer {
  if (net.isIP(value)) return implicitPrim(7, ipBytes(value));
  if (/^[^@\s]+@[^@\s]+$/.test(value)) return implicitPrim(1, Buffer.from(value, 'latin1'));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return implicitPrim(6, Buffer.from(value, 'latin1'));
  if (!/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(value)) throw new CryptoError('bad_request', `SAN ${JSON.stringify(value).slice(0, 100)} is not a DNS name, IP address, email or URI`);
  return implicitPrim(2, Buffer.from(value, 'latin1'));
}

const uri = (u: string) => implicitPrim(6, Buffer.from(u, 'latin1'));

function leafExtensions(spec: CertificateExtensionsSpec, o: { sans: string[]; subjectKeyBits: Buffer; subjectIsRsa: boolean; issuer: IssuerTemplate }): Buffer {
  const out: Buffer[] = [];
  out.push(ext('2.5.29.19', true, seq()));
  out.push(ext('2.5.29.15', true, keyUsageBits(spec.keyUsage ?? (o.subjectIsRsa ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature']))));
  if (spec.extendedKeyUsage?.length) out.push(ext('2.5.29.37', false, seq(...spec.extendedKeyUsage.map((n) => oid(ekuOid(n))))));
  if (o.sans.length) out.push(ext('2.5.29.17', false, seq(...o.sans.map(generalName))));
  if (spec.subjectKeyIdentifier !== false) out.push(ext('2.5.29.14', false, octetString(crypto.createHash('sha1').update(o.subjectKeyBits).digest())));
  if (spec.authorityKeyIdentifier !== false) out.push(ext('2.5.29.35', false, seq(implicitPrim(0, o.issuer.keyId))));
  if (spec.crlDistributionPoints?.length) {
    out.push(ext('2.5.29.31', false, seq(...spec.crlDistributionPoints.map((u) => seq(explicit(0, explicit(0, uri(u))))))));
  }
  const aia = spec.authorityInfoAccess;
  if (aia && (aia.ocsp?.length || aia.caIssuers?.length)) {
    const descriptions = [
      ...(aia.ocsp ?? []).map((u) => seq(oid('1.3.6.1.5.5.7.48.1'), uri(u))),
      ...(aia.caIssuers ?? []).map((u) => seq(oid('1.3.6.1.5.5.7.48.2'), uri(u))),
    ];
    out.push(ext('1.3.6.1.5.5.7.1.1', false, seq(...descriptions)));
  }
  return explicit(3, seq(...out));
}

export interface LeafRequest {
  issuer: IssuerTemplate;
  /** Positive serial, big-endian magnitude bytes. */
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
  subjectDer: Buffer;
  spkiDer: Buffer;
  subjectKeyBits: Buffer;
  subjectIsRsa: boolean;
  sans: string[];
  extensions: CertificateExtensionsSpec;
}

/** The whole certificate, DER. */
export function buildLeafCertificate(req: LeafRequest): Buffer {
  const tbs = seq(
    explicit(0, smallInteger(2)),
    uintegerFromBytes(req.serial),
    req.issuer.algorithmIdentifier,
    req.issuer.subjectDer,
    seq(x509Time(req.notBefore), x509Time(req.notAfter)),
    req.subjectDer,
    req.spkiDer,
    leafExtensions(req.extensions, { sans: req.sans, subjectKeyBits: req.subjectKeyBits, subjectIsRsa: req.subjectIsRsa, issuer: req.issuer }),
  );
  const signature = crypto.sign(req.issuer.hash, tbs, req.issuer.signingKey);
  return seq(tbs, req.issuer.algorithmIdentifier, bitStringBytes(signature));
}

/** The TBSCertificate bytes of a certificate (tests compare these across encoders). */
export function tbsOf(certDer: Buffer): Buffer {
  const [tbs] = children(certDer, readTlv(certDer, 0));
  return bytesOf(certDer, tbs);
}
