import net from 'node:net';
import type { Json } from '@certctl/sdk';
import { dnsClient, failure, HOST, type Outcome } from './acme-resolve.js';

/*
 * CAA (RFC 8659) for the kernel's ACME validation: when the endpoint names its CA
 * identities (`caa_identities`), a validated DNS name must also be one this CA may
 * issue for. The relevant record set is the first non-empty one climbing from the
 * name towards (not including) the root, the TLD included; without one, any CA may
 * issue. A wildcard looks at `issuewild` first. A failed lookup (other than "no such record") refuses,
 * as the RFC asks.
 */

const MAX_IDENTITIES = 10;
type CaaRecord = { critical: number; issue?: string; issuewild?: string } & Record<string, unknown>;
const KNOWN_TAGS = new Set(['critical', 'issue', 'issuewild', 'iodef', 'issuemail', 'contactemail', 'contactphone']);

/** `caaIdentities` of a request: the issuer domain names CAA records must name; undefined: no CAA check. */
export function parseCaaIdentities(raw: Json | undefined): string[] | undefined | { problem: string } {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_IDENTITIES || !raw.every((d) => typeof d === 'string' && d.length <= 253 && HOST.test(d.toLowerCase()))) {
    return { problem: `caaIdentities must be a list of 1 to ${MAX_IDENTITIES} domain names` };
  }
  return (raw as string[]).map((d) => d.toLowerCase());
}

/** The issuer domain of an issue/issuewild value ("ca.example; account=..."); '' forbids every CA. */
const issuerOf = (value: string) => value.split(';')[0].trim().toLowerCase();

/** After a successful validation, the CAA check when the request names CA identities. */
export async function thenCaa(outcome: Outcome, name: string, wildcard: boolean, identities: string[] | undefined, resolvers: string[] | undefined): Promise<Outcome> {
  return outcome.ok && identities ? checkCaa(name, wildcard, identities, resolvers) : outcome;
}

export async function checkCaa(name: string, wildcard: boolean, identities: string[], resolvers: string[] | undefined): Promise<Outcome> {
  if (net.isIP(name)) return { ok: true };
  const client = dnsClient(resolvers) as ReturnType<typeof dnsClient> & { resolveCaa(n: string): Promise<CaaRecord[]> };
  const labels = name.split('.');
  // Up to and including the TLD: only the root itself is not asked (RFC 8659 3).
  for (let i = 0; i < labels.length; i++) {
    const at = labels.slice(i).join('.');
    let records: CaaRecord[];
    try {
      records = await client.resolveCaa(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENODATA' || code === 'ENOTFOUND') continue;
      return failure('dns', `DNS problem: ${code ?? 'error'} looking up CAA for ${at}`);
    }
    if (!records.length) continue;
    // An unknown tag marked critical means this CA does not understand the policy: no issuance.
    const unknownCritical = records.find((r) => (r.critical & 128) !== 0 && !Object.keys(r).some((k) => KNOWN_TAGS.has(k) && k !== 'critical'));
    if (unknownCritical) return failure('caa', `CAA records at ${at} carry a critical property this CA does not understand`);
    const wild = wildcard ? records.filter((r) => typeof r.issuewild === 'string').map((r) => r.issuewild as string) : [];
    const issue = wild.length ? wild : records.filter((r) => typeof r.issue === 'string').map((r) => r.issue as string);
    if (!issue.length) return { ok: true };
    if (issue.some((v) => identities.includes(issuerOf(v)))) return { ok: true };
    return failure('caa', `CAA records at ${at} do not allow this CA (${identities.join(', ')}) to issue for ${wildcard ? `*.${name}` : name}`);
  }
  return { ok: true };
}
