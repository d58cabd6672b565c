import { isIP } from 'node:net';
import type { ProtocolHttpResponse } from '@certctl/sdk';
import { authenticate } from './acme-auth.js';
import { fail, json, randomId, type AcmeRequest } from './acme-http.js';
import type { Account, AcmeState, Authz, Identifier, Order } from './acme-state.js';
import { challengesJson, offeredChallenges, validationSettings, type ChallengeType } from './challenge-types.js';
import { findIssued, parseCertId } from './ari.js';
import { checkBinding } from './eab.js';
import { publicKeyOf, thumbprint } from './jws.js';
import { clientAddressKey } from '@certctl/sdk/policy';
import { countAgainst } from './rate-limit.js';

/*
 * Accounts, orders, authorizations and challenges (RFC 8555 7.3-7.5). In
 * trust_authenticated mode an order's authorizations are valid as soon as they
 * exist: a registered account may order any name, and the certctl profile
 * (required SAN patterns, key rules, policies, approval) decides what is issued.
 */

const DAY_MS = 86_400_000;
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const accountUrl = (r: AcmeRequest, id: string) => `${r.root}/acct/${id}`;

/** The account object (RFC 8555 7.1.2) at its URL. */
export const accountResponse = (r: AcmeRequest, id: string, a: Pick<Account, 'status' | 'contact'>, status = 200): ProtocolHttpResponse =>
  json(status, { status: a.status, contact: a.contact, orders: `${accountUrl(r, id)}/orders` }, { Location: accountUrl(r, id) });
const orderUrl = (r: AcmeRequest, id: string) => `${r.root}/order/${id}`;
const authzUrl = (r: AcmeRequest, id: string) => `${r.root}/authz/${id}`;

export function orderJson(r: AcmeRequest, id: string, o: Order): Record<string, unknown> {
  return {
    status: o.status,
    expires: o.expires,
    identifiers: o.identifiers,
    authorizations: o.authorizations.map((a) => authzUrl(r, a)),
    finalize: `${orderUrl(r, id)}/finalize`,
    ...(o.notBefore ? { notBefore: o.notBefore } : {}),
    ...(o.notAfter ? { notAfter: o.notAfter } : {}),
    ...(o.replaces ? { replaces: o.replaces } : {}),
    ...(o.status === 'valid' ? { certificate: `${r.root}/cert/${id}` } : {}),
    ...(o.error ? { error: { ...o.error, status: 403 } } : {}),
  };
}

function authzJson(r: AcmeRequest, id: string, a: Authz): Record<string, unknown> {
  return {
    status: a.status,
    expires: a.expires,
    identifier: { type: a.identifier.type, value: a.identifier.value.replace(/^\*\./, '') },
    ...(a.identifier.value.startsWith('*.') ? { wildcard: true } : {}),
    challenges: challengesJson(r, id, a),
  };
}

const contactsOf = (payload: Record<string, unknown>): string[] => {
  const contact = payload.contact ?? [];
  if (!Array.isArray(contact) || contact.length > 10 || !contact.every((c) => typeof c === 'string' && /^mailto:[^\s,]{3,254}$/.test(c))) {
    return fail('malformed', 'contact must be a list of mailto: URLs', 400);
  }
  return contact as string[];
};

export async function newAccount(r: AcmeRequest, state: AcmeState): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'jwk');
  if (auth.by !== 'jwk') return fail('malformed', 'new-account needs the jwk header');
  const payload = (auth.payload ?? {}) as Record<string, unknown>;
  if (typeof payload !== 'object' || Array.isArray(payload)) fail('malformed', 'the payload must be an object');
  const id = await state.accountIdForKey(auth.accountId);
  const existing = await state.account(id);
  if (existing) {
    // acct:<first key> outlives a rollover: the old key no longer opens it.
    const current = publicKeyOf(existing.jwk);
    if ('problem' in current || thumbprint(current) !== auth.accountId) fail('unauthorized', 'this key was replaced by a key rollover', 401);
    return accountResponse(r, id, existing);
  }
  if (payload.onlyReturnExisting === true) fail('accountDoesNotExist', 'no account exists for this key');
  if (r.eabRequired && payload.externalAccountBinding === undefined) fail('externalAccountRequired', 'this directory needs an external account binding');
  const eab = payload.externalAccountBinding === undefined ? undefined : await checkBinding(r, payload.externalAccountBinding, auth.key);
  await countAgainst(r, 'new_accounts_per_ip_per_hour', clientAddressKey(r.req.remoteAddress), 'new accounts from this address');
  const account = {
    status: 'valid' as const, jwk: auth.key.export({ format: 'jwk' }), contact: contactsOf(payload), createdAt: new Date(r.ctx.clock.now()).toISOString(),
    ...(eab ? { eab } : {}),
  };
  await state.saveAccount(auth.accountId, account);
  r.ctx.log.info('ACME account created', { account: auth.accountId });
  return accountResponse(r, auth.accountId, account, 201);
}

/** POST to the account URL: read it, update its contacts, or deactivate it. */
export async function updateAccount(r: AcmeRequest, state: AcmeState, id: string): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'kid');
  if (auth.by !== 'kid' || auth.accountId !== id) return fail('unauthorized', 'an account can only be managed with its own key', 401);
  const payload = auth.payload as Record<string, unknown> | null;
  const account = { ...auth.account };
  if (payload && typeof payload === 'object') {
    if (payload.contact !== undefined) account.contact = contactsOf(payload);
    if (payload.status === 'deactivated') account.status = 'deactivated';
    else if (payload.status !== undefined) fail('malformed', 'status can only be set to deactivated');
    await state.saveAccount(id, account);
  }
  return accountResponse(r, id, account);
}

function identifiersOf(payload: unknown): Identifier[] {
  const list = (payload as { identifiers?: unknown } | null)?.identifiers;
  if (!Array.isArray(list) || list.length === 0 || list.length > 100) return fail('malformed', 'identifiers must be a list of 1 to 100 identifiers');
  const seen = new Set<string>();
  const out: Identifier[] = [];
  for (const id of list as { type?: unknown; value?: unknown }[]) {
    if (!id || typeof id.value !== 'string') fail('malformed', 'each identifier needs a type and a value');
    const value = (id.value as string).toLowerCase();
    if (id.type === 'dns') {
      if (value.length > 253 || !DNS_NAME.test(value)) fail('rejectedIdentifier', `${String(id.value).slice(0, 80)} is not a DNS name`);
    } else if (id.type === 'ip') {
      if (!isIP(value)) fail('rejectedIdentifier', `${String(id.value).slice(0, 80)} is not an IP address`);
    } else {
      fail('unsupportedIdentifier', `identifier type ${String(id.type).slice(0, 20)} is not supported`);
    }
    if (!seen.has(`${id.type}:${value}`)) out.push({ type: id.type as Identifier['type'], value });
    seen.add(`${id.type}:${value}`);
  }
  return out;
}

export async function newOrder(r: AcmeRequest, state: AcmeState): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'kid');
  if (r.eabRequired && (auth.by !== 'kid' || !auth.account.eab)) fail('unauthorized', 'this directory only serves accounts bound to an external account', 403);
  const identifiers = identifiersOf(auth.payload);
  const p = (auth.payload ?? {}) as { notBefore?: unknown; notAfter?: unknown; replaces?: unknown };
  for (const f of ['notBefore', 'notAfter'] as const) if (p[f] !== undefined && (typeof p[f] !== 'string' || Number.isNaN(Date.parse(p[f] as string)))) fail('malformed', `${f} must be an RFC 3339 time`);
  const replaced = p.replaces === undefined ? undefined : await replacedCertificate(r, state, auth.accountId, identifiers, p.replaces);
  await countAgainst(r, 'orders_per_hour', auth.accountId, 'new orders for this account');
  const now = r.ctx.clock.now();
  const expires = new Date(now + 7 * DAY_MS).toISOString();
  const orderId = randomId(12);
  const authorizations: string[] = [];
  const trusted = r.mode === 'trust_authenticated';
  // Challenge mode: each name gets the challenges this directory offers for it (wildcards: dns-01 only).
  const settings = trusted ? null : validationSettings(r, r.profileKey);
  const offered = new Map<Identifier, ChallengeType[]>();
  for (const identifier of identifiers) {
    if (!settings) continue;
    const types = offeredChallenges(settings, identifier);
    if (!types.length) fail('rejectedIdentifier', `${identifier.value}: ${identifier.value.startsWith('*.') ? 'wildcard names need dns-01, which this directory does not offer' : 'no challenge type offered here can prove this identifier'}`);
    offered.set(identifier, types);
  }
  // Claimed last, once nothing else can refuse the order.
  if (replaced && !(await state.claimReplacement(replaced.serial, orderId))) fail('alreadyReplaced', 'another order already replaces this certificate', 409);
  for (const identifier of identifiers) {
    const id = randomId(12);
    authorizations.push(id);
    // trust_authenticated: the account's own authentication is the authorization; otherwise a challenge proves it.
    await state.saveAuthz(id, { account: auth.accountId, order: orderId, identifier, status: trusted ? 'valid' : 'pending', expires, token: randomId(32), ...(settings ? { challenges: offered.get(identifier) } : {}) });
  }
  const order: Order = {
    account: auth.accountId, profileKey: r.profileKey, status: trusted ? 'ready' : 'pending', expires, identifiers, authorizations,
    ...(p.notBefore ? { notBefore: p.notBefore as string } : {}), ...(p.notAfter ? { notAfter: p.notAfter as string } : {}),
    // A renewal keeps the managed certificate (finalize enrols with its id), unless that one is revoked.
    ...(replaced ? { replaces: replaced.certId, ...(replaced.renewable ? { certificateId: replaced.certificateId } : {}) } : {}),
  };
  await state.saveOrder(orderId, order);
  return json(201, orderJson(r, orderId, order), { Location: orderUrl(r, orderId) });
}

/**
 * The certificate a new order `replaces` (RFC 9773 5): one this server issued to
 * the same account, sharing an identifier with the order. Whether another order
 * already replaces it is settled by the claim in newOrder.
 */
async function replacedCertificate(r: AcmeRequest, state: AcmeState, accountId: string, identifiers: Identifier[], replaces: unknown) {
  const certId = parseCertId(replaces);
  if (!certId) return fail('malformed', 'replaces must be the ARI certID of a certificate');
  const issued = await findIssued(state, certId);
  if (!issued) return fail('malformed', 'replaces names no certificate issued here', 404);
  if (issued.account !== accountId) return fail('unauthorized', 'the certificate to replace was not issued to this account', 403);
  const names = new Set(identifiers.map((i) => i.value));
  const sans = (issued.leaf.subjectAltName ?? '').split(', ').map((s) => s.replace(/^(DNS|IP Address):/, '').toLowerCase());
  if (!sans.some((n) => names.has(n))) return fail('malformed', 'the order shares no identifier with the certificate it replaces');
  const status = await r.ctx.issuance.certificateStatus({ certificateId: issued.certificateId, serialNumber: issued.serial });
  const renewable = status !== null && status.status !== 'Revoked' && status.status !== 'Archived';
  return { certId: certId.text, serial: issued.serial, certificateId: issued.certificateId, renewable };
}

/** An order, authorization or challenge of the caller's account, or accountDoesNotExist-style refusal. */
export async function ownOrder(r: AcmeRequest, state: AcmeState, id: string): Promise<{ accountId: string; order: Order; payload: unknown }> {
  const auth = await authenticate(r, state, 'kid');
  const order = await state.order(id);
  if (!order || order.account !== auth.accountId) return fail('malformed', 'no such order', 404);
  return { accountId: auth.accountId, order, payload: auth.payload };
}

export async function getAuthz(r: AcmeRequest, state: AcmeState, id: string): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'kid');
  const a = await state.authz(id);
  if (!a || a.account !== auth.accountId) return fail('malformed', 'no such authorization', 404);
  return json(200, authzJson(r, id, a));
}

export const authzLink = (r: AcmeRequest, id: string) => `<${authzUrl(r, id)}>;rel="up"`;
