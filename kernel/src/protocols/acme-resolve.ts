import dns from 'node:dns/promises';
import net from 'node:net';
import type { Json } from '@certctl/sdk';
import { classifyAddress } from '@certctl/sdk/policy';

/*
 * Name resolution for the kernel's ACME challenge validation (http-01, dns-01,
 * tls-alpn-01). By default the system resolver answers; an ACME endpoint may name
 * its own DNS servers (`dns_resolvers`, like Pebble's -dnsserver) so a lab or an
 * internal zone is validated against the DNS its clients really use. Validators
 * connect to the addresses found here (pinned: no second lookup), and never to a
 * cloud metadata, unspecified, multicast, broadcast or reserved address.
 */

/** RFC 8555 problem types a validation failure maps to (the plugin puts them in the challenge's error). */
export type ValidationError = 'connection' | 'dns' | 'incorrectResponse' | 'tls' | 'caa';
export type Failure = { ok: false; reason: string; error: ValidationError };
export type Outcome = { ok: true } | Failure;

export const HOST = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NEVER = new Set(['metadata', 'unspecified', 'multicast', 'broadcast', 'reserved']);
const MAX_RESOLVERS = 4;
const QUERY_TIMEOUT_MS = 2000;

export const failure = (error: ValidationError, reason: string): Failure => ({ ok: false, reason, error });

/** The address classes validation never contacts (and never sends DNS queries to). */
export function refusedClass(address: string): string | null {
  const cls = classifyAddress(address);
  return NEVER.has(cls) ? cls : null;
}

/** `dnsResolvers` of a request: up to 4 `ip`, `ip:port` or `[ipv6]:port` strings; undefined means the system resolver. */
export function parseResolvers(raw: Json | undefined): string[] | undefined | { problem: string } {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_RESOLVERS) return { problem: `dnsResolvers must be a list of 1 to ${MAX_RESOLVERS} addresses` };
  const out: string[] = [];
  for (const entry of raw) {
    const m = typeof entry === 'string' ? /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)|([0-9a-fA-F:.]+))(?::(\d{1,5}))?$/.exec(entry) : null;
    const ip = m ? (m[1] ?? m[2] ?? m[3]) : '';
    // A bare IPv6 address has no port (its colons would be ambiguous).
    const port = m?.[4] !== undefined && m[3] === undefined ? Number(m[4]) : 53;
    if (!m || !net.isIP(ip) || (m[3] !== undefined && m[4] !== undefined) || port < 1 || port > 65535) return { problem: `dnsResolvers: ${String(entry).slice(0, 60)} is not an ip[:port]` };
    const cls = refusedClass(ip);
    if (cls) return { problem: `dnsResolvers: ${ip} is a ${cls} address` };
    out.push(net.isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`);
  }
  return out;
}

/** The DNS client for these servers, or the system's. */
export function dnsClient(servers: string[] | undefined): Pick<dns.Resolver, 'resolve4' | 'resolve6' | 'resolveTxt'> {
  if (!servers) return dns;
  const resolver = new dns.Resolver({ timeout: QUERY_TIMEOUT_MS, tries: 2 });
  resolver.setServers(servers);
  return resolver;
}

/** Why a lookup failed, in words an ACME client can act on. */
export function dnsProblem(name: string, type: string, err: unknown): Failure {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  const what = code === 'ENOTFOUND' ? 'NXDOMAIN' : code === 'ENODATA' ? 'no record' : code;
  return failure('dns', `DNS problem: ${what} looking up ${type} for ${name}`);
}

/**
 * The addresses to try for a name, IPv6 first (as Let's Encrypt does), one of each
 * family at most; an IP identifier is its own address. Addresses of a refused class
 * are dropped; none left is a failure.
 */
export async function addressesOf(host: string, servers: string[] | undefined): Promise<string[] | Failure> {
  let found: string[];
  if (net.isIP(host)) {
    found = [host];
  } else if (!servers) {
    try {
      found = (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch (err) {
      return dnsProblem(host, 'A/AAAA', err);
    }
  } else {
    const client = dnsClient(servers);
    const [v6, v4] = await Promise.allSettled([client.resolve6(host), client.resolve4(host)]);
    found = [...(v6.status === 'fulfilled' ? v6.value : []), ...(v4.status === 'fulfilled' ? v4.value : [])];
    if (!found.length) return dnsProblem(host, 'A/AAAA', v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : { code: 'ENODATA' });
  }
  const allowed = found.filter((a) => !refusedClass(a));
  if (!allowed.length) return failure('connection', `${host} resolves to a ${refusedClass(found[0])} address, which is never contacted`);
  const first6 = allowed.find((a) => net.isIPv6(a));
  const first4 = allowed.find((a) => net.isIPv4(a));
  return [first6, first4].filter((a): a is string => a !== undefined);
}

/** Tries each address in turn while the failure is a connection failure and time is left. */
export async function tryAddresses(addresses: string[], deadline: number, attempt: (address: string, timeoutMs: number) => Promise<Outcome>): Promise<Outcome> {
  let last: Outcome = failure('connection', 'no address to connect to');
  for (const address of addresses) {
    const timeoutMs = Math.min(10_000, deadline - Date.now() - 500);
    if (timeoutMs < 500) break;
    last = await attempt(address, timeoutMs);
    if (last.ok || last.error !== 'connection') return last;
  }
  return last;
}

/** The key authorization of a request: `<token>.<base64url thumbprint>`. */
export const KEY_AUTHORIZATION = /^[A-Za-z0-9_-]{16,128}\.[A-Za-z0-9_-]{1,128}$/;
