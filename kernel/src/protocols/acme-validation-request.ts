import net from 'node:net';
import type { Json } from '@certctl/sdk';
import { parseCaaIdentities, thenCaa } from './acme-caa.js';
import { addressesOf, HOST, KEY_AUTHORIZATION, parseResolvers, tryAddresses, type Outcome } from './acme-resolve.js';

/*
 * The fields every ctx.issuance.check* request shares, checked once here: the key
 * authorization, the DNS servers to ask, the CA identities for CAA, and for the
 * validations that connect, the host and port (the well-known one, or 1024-65535).
 */

export interface LookupOptions { keyAuthorization: string; resolvers: string[] | undefined; caa: string[] | undefined }
export interface Target extends LookupOptions { host: string; port: number }

export function parseLookupOptions(raw: Json): { fields: Record<string, Json>; options: LookupOptions } | string {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return 'the request must be an object';
  const fields = raw as Record<string, Json>;
  const { keyAuthorization, dnsResolvers, caaIdentities } = fields;
  if (typeof keyAuthorization !== 'string' || !KEY_AUTHORIZATION.test(keyAuthorization)) return 'keyAuthorization must be <token>.<thumbprint>';
  const resolvers = parseResolvers(dnsResolvers);
  if (resolvers && 'problem' in resolvers) return resolvers.problem;
  const caa = parseCaaIdentities(caaIdentities);
  if (caa && 'problem' in caa) return caa.problem;
  return { fields, options: { keyAuthorization, resolvers, caa } };
}

export function parseTarget(raw: Json, wellKnownPort: number): { fields: Record<string, Json>; target: Target } | string {
  const parsed = parseLookupOptions(raw);
  if (typeof parsed === 'string') return parsed;
  const { host, port } = parsed.fields;
  if (typeof host !== 'string' || host.length > 253 || !(net.isIP(host) || HOST.test(host))) return 'host must be a DNS name or an IP address';
  const p = port === undefined ? wellKnownPort : port;
  if (typeof p !== 'number' || !Number.isInteger(p) || !(p === wellKnownPort || (p >= 1024 && p <= 65535))) return `port must be ${wellKnownPort} or 1024-65535`;
  return { fields: parsed.fields, target: { ...parsed.options, host, port: p } };
}

/**
 * A validation that connects (http-01, tls-alpn-01): `attempt` at each pinned
 * address of the host in turn, then CAA once it succeeded.
 */
export async function validateAtAddresses(req: Target, deadline: number, attempt: (address: string, timeoutMs: number) => Promise<Outcome>): Promise<Outcome> {
  const addresses = await addressesOf(req.host, req.resolvers);
  if (!Array.isArray(addresses)) return addresses;
  return thenCaa(await tryAddresses(addresses, deadline, attempt), req.host, false, req.caa, req.resolvers);
}
