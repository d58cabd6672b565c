import type { AcmeValidationResult, ProtocolHttpResponse } from '@certctl/sdk';
import { authenticate } from './acme-auth.js';
import { fail, json, type AcmeRequest } from './acme-http.js';
import { authzLink } from './acme-orders.js';
import type { AcmeState, Authz } from './acme-state.js';
import { challengeJson, challengesOf, parseChallengeId, validationSettings, type ChallengeType } from './challenge-types.js';
import { thumbprint } from './jws.js';

/*
 * Challenges (RFC 8555 8.3 http-01, 8.4 dns-01; RFC 8737 tls-alpn-01). The client
 * POSTs {} to the challenge it has prepared; the kernel does the validation
 * (ctx.issuance.checkHttp01 / checkDns01 / checkTlsAlpn01, through the directory's
 * DNS servers when it names some) and the authorization turns valid or invalid
 * right away (validation is synchronous, within this request's deadline). The
 * order is ready once every authorization is valid, invalid as soon as one fails.
 */

async function settleOrder(state: AcmeState, orderId: string): Promise<void> {
  const order = await state.order(orderId);
  if (!order || order.status !== 'pending') return;
  const all = await Promise.all(order.authorizations.map((id) => state.authz(id)));
  const next = all.some((a) => !a || a.status === 'invalid') ? 'invalid' : all.every((a) => a?.status === 'valid') ? 'ready' : 'pending';
  if (next !== order.status) await state.saveOrder(orderId, { ...order, status: next, ...(next === 'invalid' ? { error: { type: 'urn:ietf:params:acme:error:unauthorized', detail: 'an authorization failed' } } : {}) });
}

/** Asks the kernel to validate one challenge of an authorization. */
async function validate(r: AcmeRequest, state: AcmeState, a: Authz, type: ChallengeType, keyAuthorization: string): Promise<AcmeValidationResult> {
  const s = validationSettings(r, (await state.order(a.order))?.profileKey ?? null);
  const common = { ...(s.dnsResolvers ? { dnsResolvers: s.dnsResolvers } : {}), ...(s.caaIdentities ? { caaIdentities: s.caaIdentities } : {}) };
  // A wildcard's TXT record is at the base name (RFC 8555 8.4); its SAN stays "*.name".
  const wildcard = a.identifier.value.startsWith('*.');
  const name = wildcard ? a.identifier.value.slice(2) : a.identifier.value;
  switch (type) {
    case 'http-01':
      return r.ctx.issuance.checkHttp01({ host: name, port: s.http01Port, token: a.token, keyAuthorization, ...common });
    case 'dns-01':
      return r.ctx.issuance.checkDns01({ name, wildcard, keyAuthorization, ...common });
    case 'tls-alpn-01':
      return r.ctx.issuance.checkTlsAlpn01({ host: name, port: s.tlsAlpn01Port, keyAuthorization, ...common });
  }
}

export async function respondToChallenge(r: AcmeRequest, state: AcmeState, id: string): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'kid');
  const { authzId, type } = parseChallengeId(id);
  const a = await state.authz(authzId);
  if (!a || a.account !== auth.accountId || !challengesOf(a).includes(type)) return fail('malformed', 'no such challenge', 404);
  // POST-as-GET (empty payload) only reads; a JSON object ({}) asks for validation.
  if (auth.payload === null || a.status !== 'pending') return json(200, challengeJson(r, authzId, a, type), { Link: authzLink(r, authzId) });

  // The key authorization uses the account's current key (it may have been rolled over).
  let outcome: AcmeValidationResult;
  try {
    outcome = await validate(r, state, a, type, `${a.token}.${thumbprint(auth.key)}`);
  } catch (err) {
    // The kernel refused the request itself (a misconfigured dns_resolvers, say): the client is not at fault.
    r.ctx.log.error('ACME challenge validation refused', { type, error: String((err as Error).message).slice(0, 200) });
    return fail('serverInternal', 'challenge validation is not available on this server right now', 500);
  }
  const now = new Date(r.ctx.clock.now()).toISOString();
  const next: Authz = outcome.ok
    ? { ...a, status: 'valid', chosen: type, validated: now }
    : { ...a, status: 'invalid', chosen: type, error: { type: `urn:ietf:params:acme:error:${outcome.error ?? 'incorrectResponse'}`, detail: outcome.reason } };
  await state.saveAuthz(authzId, next);
  await settleOrder(state, a.order);
  r.ctx.log.info('ACME challenge validation', { type, identifier: a.identifier.value, ok: outcome.ok, ...(outcome.ok ? {} : { reason: outcome.reason.slice(0, 200) }) });
  return json(200, challengeJson(r, authzId, next, type), { Link: authzLink(r, authzId) });
}
