import crypto from 'node:crypto';
import { children, contentOf, expectTag, oidToString, readTlv } from './der.js';
import { describePublicKey } from './public-key.js';

/**
 * SubjectPublicKeyInfo on the hot path. OpenSSL 3 spends ~100 us turning SPKI
 * DER into a key (its decoder search), and asking a key for its details costs
 * tens of microseconds more: together more than the signature check they serve.
 * EC points on the named curves are imported raw through WebCrypto instead
 * (OpenSSL still checks the point is on the curve), and the description is
 * read from the DER's object identifiers. Anything else takes node's general path.
 *
 * Not JWK: node imports a JWK point with EC_KEY_set_public_key_affine_coordinates,
 * whose key check also multiplies the point by the group order, a full scalar
 * multiplication that proves nothing more on these prime-order curves (every
 * point on the curve but infinity has the group's order). A CSR check (import
 * and verify) measured ~110 us raw against ~140 us through JWK on one thread
 * (docs/benchmarks.md).
 */

const EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const CURVES: Record<string, { jwk: 'P-256' | 'P-384' | 'P-521'; bits: number; coordinate: number }> = {
  '1.2.840.10045.3.1.7': { jwk: 'P-256', bits: 256, coordinate: 32 },
  '1.3.132.0.34': { jwk: 'P-384', bits: 384, coordinate: 48 },
  '1.3.132.0.35': { jwk: 'P-521', bits: 521, coordinate: 66 },
};
const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const ED25519 = '1.3.101.112';

export type KeyDescription = ReturnType<typeof describePublicKey>;

interface SpkiParts {
  algorithm: string;
  parameter: string | null;
  /** The subjectPublicKey BIT STRING's bytes after the unused-bits octet. */
  keyBits: Buffer;
}

function spkiParts(spki: Buffer): SpkiParts | null {
  try {
    const outer = expectTag(readTlv(spki, 0), 0x30, 'SubjectPublicKeyInfo');
    if (outer.end !== spki.length) return null;
    const [alg, bits, ...rest] = children(spki, outer);
    if (!alg || !bits || rest.length) return null;
    const [algOid, param] = children(spki, expectTag(alg, 0x30, 'AlgorithmIdentifier'));
    const raw = contentOf(spki, expectTag(bits, 0x03, 'subjectPublicKey'));
    if (raw[0] !== 0) return null;
    return {
      algorithm: oidToString(contentOf(spki, expectTag(algOid, 0x06, 'algorithm'))),
      parameter: param?.tag === 0x06 ? oidToString(contentOf(spki, param)) : null,
      keyBits: raw.subarray(1),
    };
  } catch {
    return null;
  }
}

/** The modulus size in bits of an RSAPublicKey (SEQUENCE { modulus, exponent }). */
function rsaModulusBits(keyBits: Buffer): number | null {
  try {
    const [modulus] = children(keyBits, expectTag(readTlv(keyBits, 0), 0x30, 'RSAPublicKey'));
    let m = contentOf(keyBits, expectTag(modulus, 0x02, 'modulus'));
    while (m.length > 1 && m[0] === 0) m = m.subarray(1);
    if (m[0] & 0x80 && m.length === contentOf(keyBits, modulus).length) return null; // negative: not a modulus
    return m.length * 8 - Math.clz32(m[0]) + 24;
  } catch {
    return null;
  }
}

/** What describePublicKey would say about this SPKI, read from its DER; null when node must look. */
export function describeSpkiFast(spki: Buffer): KeyDescription | null {
  const p = spkiParts(spki);
  if (!p) return null;
  if (p.algorithm === EC_PUBLIC_KEY) {
    const curve = p.parameter ? CURVES[p.parameter] : undefined;
    return curve ? { publicKeyAlgorithm: 'EC', keySize: curve.bits, namedCurve: curve.jwk } : null;
  }
  if (p.algorithm === ED25519 && p.keyBits.length === 32) return { publicKeyAlgorithm: 'Ed25519', keySize: 256 };
  if (p.algorithm === RSA_ENCRYPTION) {
    const bits = rsaModulusBits(p.keyBits);
    return bits ? { publicKeyAlgorithm: 'RSA', keySize: bits } : null;
  }
  return null;
}

/** The SPKI as a key: uncompressed EC points on the named curves imported raw, the rest through node's DER import. Rejects as node throws. */
export async function publicKeyFromSpki(spki: Buffer): Promise<crypto.KeyObject> {
  const p = spkiParts(spki);
  const curve = p?.algorithm === EC_PUBLIC_KEY && p.parameter ? CURVES[p.parameter] : undefined;
  if (p && curve && p.keyBits.length === 1 + 2 * curve.coordinate && p.keyBits[0] === 0x04) {
    return crypto.KeyObject.from(await crypto.subtle.importKey('raw', p.keyBits, { name: 'ECDSA', namedCurve: curve.jwk }, true, ['verify']));
  }
  return crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
}
