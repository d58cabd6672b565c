import type { ProtocolHttpResponse } from '@certctl/sdk';
import { authenticate } from './acme-auth.js';
import { fail, type AcmeRequest } from './acme-http.js';
import { accountResponse, accountUrl } from './acme-orders.js';
import type { AcmeState } from './acme-state.js';
import { parseJws, publicKeyOf, SUPPORTED_ALGS, thumbprint, verifySignature } from './jws.js';

/*
 * Account key rollover (RFC 8555 7.3.5): the outer JWS is signed by the current
 * key (kid), its payload is an inner JWS signed by the new key (jwk, no nonce,
 * same url) whose payload names the account and the old key. The account keeps
 * its URL; the new key's thumbprint is indexed to it.
 */
export async function keyChange(r: AcmeRequest, state: AcmeState): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'kid');
  if (auth.by !== 'kid') return fail('malformed', 'key-change is signed with the account URL');
  const inner = parseJws(JSON.stringify(auth.payload ?? null));
  if ('problem' in inner) return fail('malformed', `inner JWS: ${inner.problem}`);
  const { alg, jwk, url, nonce, kid } = inner.header;
  if (!(SUPPORTED_ALGS as readonly string[]).includes(alg)) return fail('badSignatureAlgorithm', `inner alg ${alg} is not supported`);
  if (!jwk || kid !== undefined) return fail('malformed', 'the inner JWS carries the new key as jwk');
  if (nonce !== undefined) return fail('malformed', 'the inner JWS must not carry a nonce');
  if (url !== r.url) return fail('malformed', 'the inner JWS url must be the key-change URL');
  const newKey = publicKeyOf(jwk);
  if ('problem' in newKey) return fail('malformed', `the new key: ${newKey.problem}`);
  if (!verifySignature(alg, newKey, inner)) return fail('malformed', 'the inner JWS signature does not verify with the new key');
  let body: { account?: unknown; oldKey?: unknown };
  try {
    body = JSON.parse(inner.payload) as typeof body;
  } catch {
    return fail('malformed', 'the inner payload is not JSON');
  }
  if (body.account !== accountUrl(r, auth.accountId)) return fail('malformed', 'the inner payload names another account');
  const oldKey = body.oldKey && typeof body.oldKey === 'object' ? publicKeyOf(body.oldKey as never) : { problem: 'missing' };
  const oldTp = thumbprint(auth.key);
  if ('problem' in oldKey || thumbprint(oldKey) !== oldTp) return fail('malformed', 'oldKey is not the account key');

  const newTp = thumbprint(newKey);
  const holder = await state.accountIdForKey(newTp);
  if (holder !== auth.accountId && (await state.account(holder))) return fail('conflict', 'the new key already belongs to an account', 409, {}, { Location: accountUrl(r, holder) });
  await state.saveAccount(auth.accountId, { ...auth.account, jwk: newKey.export({ format: 'jwk' }) });
  if (newTp !== auth.accountId) await state.indexKey(newTp, auth.accountId);
  if (oldTp !== auth.accountId) await state.dropKeyIndex(oldTp);
  r.ctx.log.info('ACME account key rolled over', { account: auth.accountId });
  return accountResponse(r, auth.accountId, auth.account);
}
