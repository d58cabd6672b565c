import type { IssueRequest } from '@certctl/sdk';
import type { LocalCaConfig } from './local-ca-config.js';

const DAY_MS = 86_400_000;

/**
 * The certificate's notAfter: the requested one, or now + default_ttl_days; never
 * beyond the issuer's max_ttl_days nor the profile's max TTL (both caps apply,
 * the shorter wins). A request that is unusable on its face is refused.
 */
export function notAfterFor(request: IssueRequest, config: LocalCaConfig, now: number): { notAfter: string } | { refused: string } {
  let maxMs = config.max_ttl_days * DAY_MS;
  const profileMax = request.profile?.maxTtlSeconds;
  if (typeof profileMax === 'number' && Number.isFinite(profileMax)) maxMs = Math.min(maxMs, profileMax * 1000);
  if (maxMs <= 0) return { refused: 'the profile allows no certificate lifetime (max TTL is 0)' };
  let wanted = now + Math.min(config.default_ttl_days * DAY_MS, maxMs);
  if (request.notAfter !== undefined) {
    wanted = Date.parse(request.notAfter);
    if (Number.isNaN(wanted)) return { refused: `notAfter ${JSON.stringify(String(request.notAfter).slice(0, 64))} is not a date` };
    if (wanted <= now) return { refused: `notAfter ${request.notAfter} is not in the future` };
  }
  return { notAfter: new Date(Math.min(wanted, now + maxMs)).toISOString() };
}

/** An RFC 4514 attribute value with its special characters escaped. */
export function escapeDnValue(value: string): string {
  return value
    .replace(/[\\,+"<>;=]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}

const HOSTNAME = /^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/;
const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+:[0-9a-fA-F:.]*)$/;

/**
 * SANs to put in the certificate: the request's, plus the common name when it
 * names a host and the certificate is for TLS servers (clients match SANs only).
 * Empty means "the CSR's own SANs".
 */
export function sansFor(request: IssueRequest, ekus: string[]): string[] {
  const cn = request.commonName?.trim() ?? '';
  const withCn = cn && (HOSTNAME.test(cn) || IP.test(cn)) && ekus.includes('serverAuth') ? [cn] : [];
  return [...new Set([...withCn, ...(request.sans ?? [])])];
}
