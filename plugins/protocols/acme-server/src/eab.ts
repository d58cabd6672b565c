import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { fail, type AcmeRequest } from './acme-http.js';
import { parseJws, publicKeyOf, thumbprint } from './jws.js';

/*
 * External account binding (RFC 8555 7.3.4): the new-account payload carries a
 * JWS over the account's public key, MACed with a key the operator handed out
 * (eab_keys, a secret of the endpoint) and naming that key's id. It proves the
 * new ACME account belongs to someone the operator knows.
 */

const HMAC_ALGS: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/** The EAB key id the binding was made with; fails the request when the binding is wrong. */
export async function checkBinding(r: AcmeRequest, binding: unknown, accountKey: KeyObject): Promise<string> {
  if (!binding || typeof binding !== 'object') return fail('malformed', 'externalAccountBinding must be a JWS object');
  const jws = parseJws(JSON.stringify(binding));
  if ('problem' in jws) return fail('malformed', `externalAccountBinding: ${jws.problem}`);
  const { alg, kid, url, nonce } = jws.header;
  const hash = HMAC_ALGS[alg];
  if (!hash) return fail('badSignatureAlgorithm', 'externalAccountBinding must use HS256, HS384 or HS512');
  if (nonce !== undefined) return fail('malformed', 'externalAccountBinding must not carry a nonce');
  if (url !== r.url) return fail('unauthorized', 'externalAccountBinding url does not match the request URL', 401);
  if (typeof kid !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(kid)) return fail('unauthorized', 'externalAccountBinding names no known key', 401);
  const macKey = await r.ctx.secrets.get(`eab_keys.${kid}`);
  if (!macKey) return fail('unauthorized', 'externalAccountBinding names no known key', 401);
  const expected = createHmac(hash, Buffer.from(macKey, 'base64url')).update(jws.signingInput).digest();
  if (expected.length !== jws.signature.length || !timingSafeEqual(expected, jws.signature)) return fail('unauthorized', 'externalAccountBinding MAC does not verify', 401);
  let bound: KeyObject | { problem: string };
  try {
    bound = publicKeyOf(JSON.parse(jws.payload));
  } catch {
    return fail('malformed', 'externalAccountBinding payload must be the account JWK');
  }
  if ('problem' in bound || thumbprint(bound) !== thumbprint(accountKey)) return fail('malformed', 'externalAccountBinding is for a different account key');
  return kid;
}
