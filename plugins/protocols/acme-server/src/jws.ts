import { createHash, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';

/*
 * RFC 8555 6.2 request authentication: a flattened JWS (RFC 7515) whose protected
 * header names the algorithm, the nonce, the request URL and either the account
 * key (jwk) or the account URL (kid). Verification uses node:crypto only.
 */

export interface ParsedJws {
  header: { alg: string; nonce?: string; url?: string; jwk?: JsonWebKey; kid?: string };
  /** The decoded payload; '' for POST-as-GET. */
  payload: string;
  signingInput: Buffer;
  signature: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]*$/;
const b64url = (s: string) => Buffer.from(s, 'base64url');

export const SUPPORTED_ALGS = ['ES256', 'ES384', 'RS256', 'EdDSA'] as const;

/** The flattened JWS of a request body, or why it is malformed. */
export function parseJws(body: string): ParsedJws | { problem: string } {
  let outer: unknown;
  try {
    outer = JSON.parse(body);
  } catch {
    return { problem: 'the body is not JSON' };
  }
  if (!outer || typeof outer !== 'object' || Array.isArray(outer)) return { problem: 'the body must be a flattened JWS object' };
  const { protected: prot, payload, signature } = outer as Record<string, unknown>;
  if (typeof prot !== 'string' || typeof payload !== 'string' || typeof signature !== 'string') return { problem: 'the JWS needs protected, payload and signature strings (flattened serialization)' };
  if (!B64URL.test(prot) || !B64URL.test(payload) || !B64URL.test(signature)) return { problem: 'JWS members must be base64url without padding' };
  let header: unknown;
  try {
    header = JSON.parse(b64url(prot).toString('utf8'));
  } catch {
    return { problem: 'the protected header is not JSON' };
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) return { problem: 'the protected header must be an object' };
  const h = header as Record<string, unknown>;
  if (typeof h.alg !== 'string') return { problem: 'the protected header has no alg' };
  if (h.jwk !== undefined && h.kid !== undefined) return { problem: 'the protected header must carry jwk or kid, not both' };
  if (h.jwk !== undefined && (typeof h.jwk !== 'object' || h.jwk === null || Array.isArray(h.jwk))) return { problem: 'jwk must be an object' };
  if (h.kid !== undefined && typeof h.kid !== 'string') return { problem: 'kid must be a string' };
  if (h.nonce !== undefined && typeof h.nonce !== 'string') return { problem: 'nonce must be a string' };
  if (h.url !== undefined && typeof h.url !== 'string') return { problem: 'url must be a string' };
  return {
    header: h as ParsedJws['header'],
    payload: b64url(payload).toString('utf8'),
    signingInput: Buffer.from(`${prot}.${payload}`, 'ascii'),
    signature: b64url(signature),
  };
}

/** The account key of a JWK, or why it cannot be one (private members are refused). */
export function publicKeyOf(jwk: JsonWebKey): KeyObject | { problem: string } {
  if (jwk.d !== undefined || jwk.p !== undefined) return { problem: 'the jwk holds private key material' };
  try {
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return { problem: 'RSA account keys must have at least 2048 bits' };
    return key;
  } catch {
    return { problem: 'the jwk is not a usable public key' };
  }
}

/** Whether the signature verifies with this key, and the algorithm fits the key. */
export function verifySignature(alg: string, key: KeyObject, jws: ParsedJws): boolean {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  try {
    switch (alg) {
      case 'ES256':
        return type === 'ec' && curve === 'prime256v1' && verify('sha256', jws.signingInput, { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
      case 'ES384':
        return type === 'ec' && curve === 'secp384r1' && verify('sha384', jws.signingInput, { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
      case 'RS256':
        return type === 'rsa' && verify('sha256', jws.signingInput, key, jws.signature);
      case 'EdDSA':
        return type === 'ed25519' && verify(null, jws.signingInput, key, jws.signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url): the account id. */
export function thumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as Record<string, string>;
  const members = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : ['crv', 'kty', 'x'];
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

/** The public JWK of a key, as stored with the account. */
export const publicJwk = (key: KeyObject): JsonWebKey => key.export({ format: 'jwk' });
