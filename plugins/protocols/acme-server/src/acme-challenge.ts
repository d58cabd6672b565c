import type { ProtocolHttpResponse } from '@certctl/sdk';
import { authenticate } from './acme-auth.js';
import { fail, json, type AcmeRequest } from './acme-http.js';
import { authzLink, challengeJson } from './acme-orders.js';
import type { AcmeState, Authz } from './acme-state.js';
import { thumbprint } from './jws.js';

/*
 * http-01 (RFC 8555 8.3). The client POSTs {} to the challenge when its token is
 * served; the kernel fetches http://<name>/.well-known/acme-challenge/<token>
 * (ctx.issuance.checkHttp01) and the authorization turns valid or invalid right
 * away (validation is synchronous, within this request's deadline). The order is
 * ready once every authorization is valid, invalid as soon as one fails.
 */

async function settleOrder(state: AcmeState, orderId: string): Promise<void> {
  const order = await state.order(orderId);
  if (!order || order.status !== 'pending') return;
  const all = await Promise.all(order.authorizations.map((id) => state.authz(id)));
  const next = all.some((a) => !a || a.status === 'invalid') ? 'invalid' : all.every((a) => a?.status === 'valid') ? 'ready' : 'pending';
  if (next !== order.status) await state.saveOrder(orderId, { ...order, status: next, ...(next === 'invalid' ? { error: { type: 'urn:ietf:params:acme:error:unauthorized', detail: 'an authorization failed' } } : {}) });
}

export async function respondToChallenge(r: AcmeRequest, state: AcmeState, id: string): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'kid');
  const a = await state.authz(id);
  if (!a || a.account !== auth.accountId) return fail('malformed', 'no such challenge', 404);
  // POST-as-GET (empty payload) only reads; a JSON object ({}) asks for validation.
  if (auth.payload === null || a.status !== 'pending') return json(200, challengeJson(r, id, a), { Link: authzLink(r, id) });

  const port = typeof r.ctx.config.http01_port === 'number' ? r.ctx.config.http01_port : 80;
  // The key authorization uses the account's current key (it may have been rolled over).
  const outcome = await r.ctx.issuance.checkHttp01({ host: a.identifier.value, port, token: a.token, keyAuthorization: `${a.token}.${thumbprint(auth.key)}` });
  const now = new Date(r.ctx.clock.now()).toISOString();
  const next: Authz = outcome.ok
    ? { ...a, status: 'valid', validated: now }
    : { ...a, status: 'invalid', error: { type: `urn:ietf:params:acme:error:${/connect|resolve|no answer/.test(outcome.reason) ? 'connection' : 'incorrectResponse'}`, detail: outcome.reason } };
  await state.saveAuthz(id, next);
  await settleOrder(state, a.order);
  r.ctx.log.info('ACME http-01 validation', { identifier: a.identifier.value, ok: outcome.ok, ...(outcome.ok ? {} : { reason: outcome.reason.slice(0, 200) }) });
  return json(200, challengeJson(r, id, next), { Link: authzLink(r, id) });
}
