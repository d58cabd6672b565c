import type { JsonWebKey, KeyObject } from 'node:crypto';
import { fail, type AcmeRequest } from './acme-http.js';
import type { Account, AcmeState } from './acme-state.js';
import { parseJws, publicKeyOf, SUPPORTED_ALGS, thumbprint, verifySignature } from './jws.js';

export type Authenticated =
  | { by: 'kid'; accountId: string; account: Account; key: KeyObject; payload: unknown }
  | { by: 'jwk'; accountId: string; key: KeyObject; jwk: JsonWebKey; payload: unknown };

const JOSE = 'application/jose+json';

/**
 * Checks an ACME POST (RFC 8555 6.2-6.5) in the order that gives the most useful
 * error: media type, JWS shape, algorithm, nonce (consumed even when a later check
 * fails, as a client must take a fresh one), URL, key, signature. `jwk` requests
 * (new-account) carry the key; all others the account URL, except revoke-cert,
 * which takes either (the account's, or the certificate's own key). POST-as-GET has an empty payload (null here).
 */
export async function authenticate(r: AcmeRequest, state: AcmeState, keyBy: 'jwk' | 'kid' | 'either'): Promise<Authenticated> {
  if (r.req.method !== 'POST') fail('malformed', 'ACME resources are read with POST-as-GET', 405, {}, { Allow: 'POST' });
  const type = (r.req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== JOSE) fail('malformed', `requests must be ${JOSE}`, 415);
  const jws = parseJws(Buffer.from(r.req.body, 'base64').toString('utf8'));
  if ('problem' in jws) return fail('malformed', jws.problem);
  const { header } = jws;
  if (!(SUPPORTED_ALGS as readonly string[]).includes(header.alg)) fail('badSignatureAlgorithm', `alg ${header.alg} is not supported`, 400, { algorithms: [...SUPPORTED_ALGS] });
  if (!header.nonce) fail('badNonce', 'the protected header has no nonce');
  if (!(await state.useNonce(header.nonce!))) fail('badNonce', 'the nonce is unknown, expired or already used');
  if (header.url !== r.url) fail('unauthorized', `the JWS url does not match the request URL ${r.url}`, 401);

  let payload: unknown = null;
  if (jws.payload !== '') {
    try {
      payload = JSON.parse(jws.payload);
    } catch {
      fail('malformed', 'the JWS payload is not JSON');
    }
  }

  if (keyBy === 'jwk' || (keyBy === 'either' && header.jwk)) {
    if (!header.jwk) fail('malformed', 'this request must be signed with the jwk header, not kid');
    const key = publicKeyOf(header.jwk!);
    if ('problem' in key) return fail('malformed', key.problem);
    if (!verifySignature(header.alg, key, jws)) fail('malformed', 'the JWS signature does not verify with the jwk');
    return { by: 'jwk', accountId: thumbprint(key), key, jwk: header.jwk!, payload };
  }
  if (!header.kid) fail('malformed', 'this request must be signed with the kid header (the account URL)');
  const prefix = `${r.root}/acct/`;
  const accountId = header.kid!.startsWith(prefix) ? header.kid!.slice(prefix.length) : '';
  const account = /^[A-Za-z0-9_-]{43}$/.test(accountId) ? await state.account(accountId) : undefined;
  if (!account) fail('accountDoesNotExist', 'no account has this URL', 400);
  if (account!.status !== 'valid') fail('unauthorized', 'the account is deactivated', 401);
  const key = publicKeyOf(account!.jwk);
  if ('problem' in key || !verifySignature(header.alg, key, jws)) return fail('malformed', 'the JWS signature does not verify with the account key');
  return { by: 'kid', accountId, account: account!, key, payload };
}
