import type { Json } from '@certctl/sdk';
import type { AcmeRequest } from './acme-http.js';
import type { Authz, Identifier } from './acme-state.js';

/*
 * Which challenges a directory offers (RFC 8555 8, RFC 8737, RFC 8738) and how they
 * appear. `challenge_types` (per profile directory, else the endpoint's; default all
 * three) limits them; a wildcard name gets dns-01 only, an IP address never dns-01.
 * A challenge's URL is its authorization's plus the type: /chall/<authz id>-<type>.
 */

export const CHALLENGE_TYPES = ['http-01', 'dns-01', 'tls-alpn-01'] as const;
export type ChallengeType = (typeof CHALLENGE_TYPES)[number];

export interface ValidationSettings {
  types: ChallengeType[];
  /** DNS servers for validation lookups (`ip[:port]`); undefined: the kernel's system resolver. */
  dnsResolvers?: string[];
  /** This CA's issuer domain names for CAA (RFC 8659); undefined: no CAA check. */
  caaIdentities?: string[];
  http01Port: number;
  tlsAlpn01Port: number;
}

const isType = (t: unknown): t is ChallengeType => CHALLENGE_TYPES.includes(t as ChallengeType);

/** `profileKey`: the directory the order was placed at (challenges themselves live under the root). */
export function validationSettings(r: AcmeRequest, profileKey: string | null): ValidationSettings {
  const config = r.ctx.config as Record<string, Json>;
  const profiles = (config.profiles ?? {}) as Record<string, Record<string, Json>>;
  const own = profileKey !== null && Object.hasOwn(profiles, profileKey) ? profiles[profileKey] : {};
  const pick = (field: string) => own[field] ?? config[field];
  const types = pick('challenge_types');
  const resolvers = pick('dns_resolvers');
  return {
    // Kept in this order: clients that take the first usable challenge get http-01.
    types: Array.isArray(types) ? CHALLENGE_TYPES.filter((t) => types.includes(t)) : [...CHALLENGE_TYPES],
    ...(Array.isArray(resolvers) && resolvers.length ? { dnsResolvers: resolvers as string[] } : {}),
    ...(Array.isArray(config.caa_identities) && config.caa_identities.length ? { caaIdentities: config.caa_identities as string[] } : {}),
    http01Port: typeof config.http01_port === 'number' ? config.http01_port : 80,
    tlsAlpn01Port: typeof config.tlsalpn01_port === 'number' ? config.tlsalpn01_port : 443,
  };
}

/** The challenges an identifier can be proven with here; none means the name cannot be ordered. */
export function offeredChallenges(settings: ValidationSettings, identifier: Identifier): ChallengeType[] {
  if (identifier.value.startsWith('*.')) return settings.types.filter((t) => t === 'dns-01');
  if (identifier.type === 'ip') return settings.types.filter((t) => t !== 'dns-01');
  return settings.types;
}

/** Authorizations stored before challenge types were recorded offered http-01 only. */
export const challengesOf = (a: Authz): ChallengeType[] => a.challenges ?? ['http-01'];

export function parseChallengeId(id: string): { authzId: string; type: ChallengeType } {
  const m = /^(.+)-(http-01|dns-01|tls-alpn-01)$/.exec(id);
  if (m && isType(m[2])) return { authzId: m[1], type: m[2] };
  // A bare authorization id: the URL of an authorization stored before (http-01).
  return { authzId: id, type: 'http-01' };
}

const challengeUrl = (r: AcmeRequest, authzId: string, type: ChallengeType) => `${r.root}/chall/${authzId}-${type}`;

/**
 * One challenge object. The one the client tried carries the authorization's
 * outcome; the others stay pending (in trust_authenticated mode nothing was tried
 * and the one challenge shows the authorization's status).
 */
export function challengeJson(r: AcmeRequest, authzId: string, a: Authz, type: ChallengeType): Record<string, unknown> {
  const tried = a.chosen === undefined || a.chosen === type;
  return {
    type, url: challengeUrl(r, authzId, type), token: a.token, status: tried ? a.status : 'pending',
    ...(tried && a.validated ? { validated: a.validated } : {}),
    ...(tried && a.error ? { error: { ...a.error, status: 403 } } : {}),
  };
}

export const challengesJson = (r: AcmeRequest, authzId: string, a: Authz) => challengesOf(a).map((t) => challengeJson(r, authzId, a, t));
