import type { Json } from '@certctl/sdk';
import { fail, type AcmeRequest } from './acme-http.js';

/*
 * Rate limits (per endpoint, config `rate_limits`): new orders per account and
 * new accounts per client address, each in fixed one-hour windows. Counters are
 * kv.increment rows keyed by the window, so every kernel serving the endpoint
 * counts into the same ones. A request over the limit gets the rateLimited
 * problem (RFC 8555 6.7) with Retry-After set to the window's end; nothing is
 * created for it. 0 turns a limit off.
 */

export const DEFAULT_LIMITS = { orders_per_hour: 1000, new_accounts_per_ip_per_hour: 100 } as const;
type LimitName = keyof typeof DEFAULT_LIMITS;

const HOUR_MS = 3_600_000;

function limitOf(r: AcmeRequest, name: LimitName): number {
  const configured = (r.ctx.config.rate_limits as Record<string, Json> | undefined)?.[name];
  return typeof configured === 'number' ? configured : DEFAULT_LIMITS[name];
}

/** Counts one more request against a limit; fails with rateLimited (429) past it. */
export async function countAgainst(r: AcmeRequest, name: LimitName, subject: string, what: string): Promise<void> {
  const limit = limitOf(r, name);
  if (limit <= 0) return;
  const now = r.ctx.clock.now();
  const window = Math.floor(now / HOUR_MS);
  const n = await r.ctx.kv.increment(`rl:${name}:${window}:${subject}`, { ttlSeconds: 2 * 3600 });
  if (n <= limit) return;
  const retryAfter = Math.max(1, Math.ceil(((window + 1) * HOUR_MS - now) / 1000));
  fail('rateLimited', `${what}: at most ${limit} per hour; try again in ${retryAfter} s`, 429, {}, { 'Retry-After': String(retryAfter) });
}
