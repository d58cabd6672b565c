import { definePlugin, type Json, type PluginContext, type ProtocolHttpRequest, type ProtocolHttpResponse } from '@certctl/sdk';
import { AcmeFailure, json, problem, type AcmeRequest } from './acme-http.js';
import { finalize, getCertificate, getOrder, revokeCert } from './acme-finalize.js';
import { respondToChallenge } from './acme-challenge.js';
import { getAuthz, newAccount, newOrder, updateAccount } from './acme-orders.js';
import { AcmeState } from './acme-state.js';
import { keyChange } from './key-change.js';
import { renewalInfo } from './ari.js';

/*
 * The ACME server (RFC 8555) at /acme/directory, and per configured certctl
 * profile at /acme/profile/{profile_id}/directory. Issuance goes through the
 * kernel (ctx.issuance); state lives in ctx.kv (acme-state.ts).
 */

type Handler = (r: AcmeRequest, state: AcmeState, id: string) => Promise<ProtocolHttpResponse>;

/** Resources below the root, by their first path segment: /<kind>/<id>[/<sub>]. */
const RESOURCES: Record<string, Handler> = {
  acct: updateAccount,
  order: getOrder,
  authz: getAuthz,
  chall: respondToChallenge,
  cert: getCertificate,
};

function directory(r: AcmeRequest): ProtocolHttpResponse {
  const tos = r.ctx.config.terms_of_service_url;
  return json(200, {
    newNonce: `${r.dirBase}/new-nonce`,
    newAccount: `${r.dirBase}/new-account`,
    newOrder: `${r.dirBase}/new-order`,
    revokeCert: `${r.dirBase}/revoke-cert`,
    keyChange: `${r.dirBase}/key-change`,
    renewalInfo: `${r.dirBase}/renewal-info`,
    meta: { externalAccountRequired: r.eabRequired, ...(typeof tos === 'string' ? { termsOfService: tos } : {}) },
  });
}

async function route(r: AcmeRequest, state: AcmeState, rest: string[]): Promise<ProtocolHttpResponse> {
  const method = r.req.method;
  if (rest.length === 1) {
    switch (rest[0]) {
      case 'directory':
        return method === 'GET' || method === 'HEAD' ? directory(r) : problem('malformed', 'GET the directory', 405, {}, { Allow: 'GET' });
      case 'new-nonce':
        // The wrapper adds the Replay-Nonce; HEAD answers 200, GET 204 (RFC 8555 7.2).
        return { status: method === 'HEAD' ? 200 : 204, headers: { 'Cache-Control': 'no-store' } };
      case 'new-account':
        return newAccount(r, state);
      case 'new-order':
        return newOrder(r, state);
      case 'revoke-cert':
        return revokeCert(r, state);
      case 'key-change':
        return keyChange(r, state);
    }
  }
  if (rest.length === 2 && rest[0] === 'renewal-info') return renewalInfo(r, state, rest[1]);
  if (r.profileKey === null && rest.length >= 2 && /^[A-Za-z0-9_-]{1,64}$/.test(rest[1])) {
    if (rest.length === 2 && Object.hasOwn(RESOURCES, rest[0])) return RESOURCES[rest[0]](r, state, rest[1]);
    if (rest.length === 3 && rest[0] === 'order' && rest[2] === 'finalize') return finalize(r, state, rest[1]);
  }
  return problem('malformed', 'no such ACME resource', 404);
}

/** Splits off /profile/<id>; null when that profile has no directory here. */
type Scope = Pick<AcmeRequest, 'profileKey' | 'issuerId' | 'profileId' | 'mode' | 'eabRequired'> & { rest: string[] };

function scope(ctx: PluginContext, parts: string[]): Scope | null {
  const config = ctx.config as Record<string, Json>;
  const mode = (m: Json | undefined) => (m === 'trust_authenticated' ? 'trust_authenticated' : 'challenge') as AcmeRequest['mode'];
  if (parts[0] !== 'profile') return { profileKey: null, issuerId: config.issuer_id as string, profileId: (config.profile_id as string | undefined) ?? null, mode: mode(config.mode), eabRequired: config.external_account_required === true, rest: parts };
  const profiles = (config.profiles ?? {}) as Record<string, Record<string, Json>>;
  const key = parts[1];
  if (!key || !Object.hasOwn(profiles, key)) return null;
  const own = profiles[key];
  return {
    profileKey: key, issuerId: (own.issuer_id as string | undefined) ?? (config.issuer_id as string), profileId: key, mode: mode(own.mode ?? config.mode),
    eabRequired: (own.external_account_required ?? config.external_account_required) === true, rest: parts.slice(2),
  };
}

async function handle(req: ProtocolHttpRequest, ctx: PluginContext): Promise<ProtocolHttpResponse> {
  const state = new AcmeState(ctx);
  const root = `${req.baseUrl}${req.mount}`;
  const parts = req.path.split('/').slice(1);
  const scoped = scope(ctx, parts);
  let res: ProtocolHttpResponse;
  if (!scoped) {
    res = problem('malformed', 'no ACME directory is configured for this profile', 404);
  } else {
    const dirBase = scoped.profileKey === null ? root : `${root}/profile/${scoped.profileKey}`;
    const r: AcmeRequest = { req, ctx, root, dirBase, url: `${root}${req.path}`, profileKey: scoped.profileKey, issuerId: scoped.issuerId, profileId: scoped.profileId, mode: scoped.mode, eabRequired: scoped.eabRequired };
    try {
      res = await route(r, state, scoped.rest);
    } catch (err) {
      if (!(err instanceof AcmeFailure)) throw err;
      res = err.response;
    }
  }
  // Every answer carries a fresh nonce and the directory link (RFC 8555 6.5, 7.1).
  const directoryUrl = scoped?.profileKey ? `${root}/profile/${scoped.profileKey}/directory` : `${root}/directory`;
  // A handler's own links (a challenge's rel="up", which certbot needs) stay beside the index link.
  const link = [res.headers?.Link, `<${directoryUrl}>;rel="index"`].filter(Boolean).join(', ');
  return { ...res, headers: { ...res.headers, 'Replay-Nonce': await state.newNonce(), Link: link, 'Cache-Control': 'no-store' } };
}

export default definePlugin({ kind: 'protocol', handle });
