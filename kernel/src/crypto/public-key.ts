import crypto from 'node:crypto';

const CURVE_BITS: Record<string, number> = { 'P-256': 256, 'P-384': 384, 'P-521': 521, prime256v1: 256, secp384r1: 384, secp521r1: 521 };
const CURVE_NAMES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** Algorithm, size and curve of a SubjectPublicKeyInfo (DER), from node's own key parser. */
export function describePublicKey(spki: ArrayBuffer | Uint8Array | crypto.KeyObject): { publicKeyAlgorithm: string; keySize: number | null; namedCurve?: string } {
  // A key object already at hand is reused: building one from DER costs more than a signature check.
  const key = spki instanceof crypto.KeyObject ? spki : crypto.createPublicKey({ key: Buffer.from(spki instanceof Uint8Array ? spki : new Uint8Array(spki)), format: 'der', type: 'spki' });
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return { publicKeyAlgorithm: 'RSA', keySize: details.modulusLength ?? null };
    case 'ec': {
      const curve = details.namedCurve ?? '';
      return { publicKeyAlgorithm: 'EC', keySize: CURVE_BITS[curve] ?? null, namedCurve: CURVE_NAMES[curve] ?? curve };
    }
    case 'ed25519': return { publicKeyAlgorithm: 'Ed25519', keySize: 256 };
    case 'ed448': return { publicKeyAlgorithm: 'Ed448', keySize: 456 };
    default: return { publicKeyAlgorithm: String(key.asymmetricKeyType ?? 'unknown'), keySize: null };
  }
}
