import type { Json } from '@certctl/sdk';
import { fail, type AcmeRequest } from './acme-http.js';

/*
 * Rate limits (per endpoint, config `rate_limits`): new orders per account and
 * new accounts per client address, per hour. Fixed hourly windows let a client
 * spend a limit twice across a window's end, so the count is a sliding-window
 * estimate over the last hour: this window's count plus the previous window's,
 * weighted by how much of it still lies within the hour (the previous window's
 * requests taken as spread evenly over it).
 *
 * Counters are kv.increment rows keyed by the window, so every kernel serving the
 * endpoint counts into the same ones; a check is one atomic increment of this
 * window's counter and one read of the previous one. A request over the limit
 * gets the rateLimited problem (RFC 8555 6.7), nothing is created for it, and
 * Retry-After says when the estimate will have fallen far enough to admit one
 * more request. A refused request still counts, once, like any other: the
 * increment is the check, so there is no second write to undo it. Retry-After
 * already includes it, so a client that waits as told gets in; one that keeps
 * retrying early keeps itself limited. 0 turns a limit off.
 */

const DEFAULT_LIMITS = { orders_per_hour: 1000, new_accounts_per_ip_per_hour: 100 } as const;
type LimitName = keyof typeof DEFAULT_LIMITS;

const WINDOW_MS = 3_600_000;
/** A window's counter is read until the end of the next window; a minute more for clock skew between kernels. */
const COUNTER_TTL_SECONDS = (2 * WINDOW_MS) / 1000 + 60;

export interface WindowCounts {
  /** Requests counted in the window `now` falls in, this one included. */
  current: number;
  /** Requests counted in the window before it. */
  previous: number;
}

export type SlidingVerdict = { allowed: true; estimate: number } | { allowed: false; estimate: number; retryAfterSeconds: number };

/**
 * The sliding-window check, pure: `estimate` = current + previous * (1 - elapsed
 * fraction of the current window), allowed while it is at most `limit`. Refused:
 * `retryAfterSeconds` until a further request would be allowed, assuming no other
 * request comes in meanwhile (at least 1). Integer milliseconds throughout, so the
 * comparison at the Retry-After instant is exact.
 */
export function slidingWindow(now: number, counts: WindowCounts, limit: number, windowMs = WINDOW_MS): SlidingVerdict {
  const start = Math.floor(now / windowMs) * windowMs;
  const elapsed = now - start;
  const { current, previous } = counts;
  const estimate = current + (previous * (windowMs - elapsed)) / windowMs;
  // current + previous * (windowMs - elapsed) / windowMs <= limit, kept in integers.
  if (current * windowMs + previous * (windowMs - elapsed) <= limit * windowMs) return { allowed: true, estimate };
  // One more request fits when (current + 1) + previous * (windowMs - e) / windowMs <= limit:
  // later in this window if the previous window's weight can shrink enough, else in the
  // next one, where this window is the previous and weighs current * (windowMs - e) / windowMs.
  const room = limit - current - 1;
  const retryAt = room >= 0 && previous > 0
    ? start + windowMs - Math.floor((room * windowMs) / previous)
    : start + 2 * windowMs - Math.floor(((limit - 1) * windowMs) / current);
  return { allowed: false, estimate, retryAfterSeconds: Math.max(1, Math.ceil((retryAt - now) / 1000)) };
}

function limitOf(r: AcmeRequest, name: LimitName): number {
  const configured = (r.ctx.config.rate_limits as Record<string, Json> | undefined)?.[name];
  return typeof configured === 'number' ? configured : DEFAULT_LIMITS[name];
}

/** Counts one more request against a limit; fails with rateLimited (429) past it. */
export async function countAgainst(r: AcmeRequest, name: LimitName, subject: string, what: string): Promise<void> {
  const limit = limitOf(r, name);
  if (limit <= 0) return;
  const now = r.ctx.clock.now();
  const window = Math.floor(now / WINDOW_MS);
  const key = (w: number) => `rl:${name}:${w}:${subject}`;
  const [current, previous] = await Promise.all([
    r.ctx.kv.increment(key(window), { ttlSeconds: COUNTER_TTL_SECONDS }),
    r.ctx.kv.get(key(window - 1)),
  ]);
  const verdict = slidingWindow(now, { current, previous: typeof previous === 'number' ? previous : 0 }, limit);
  if (verdict.allowed) return;
  const retryAfter = verdict.retryAfterSeconds;
  fail('rateLimited', `${what}: at most ${limit} in any hour; try again in ${retryAfter} s`, 429, {}, { 'Retry-After': String(retryAfter) });
}
