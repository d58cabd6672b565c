import crypto from 'node:crypto';
import { clientAddressKey } from '@certctl/sdk/policy';
import { appError } from '../../errors.js';
import type { Ctx } from '../route.js';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Remembers digests of Authorization headers that authenticated recently. Only
 * those get a bucket of their own; anything else is limited by client address,
 * so rotating made-up keys does not buy a fresh bucket per request (and IPv6
 * clients by their /64, so rotating addresses within it buys none either).
 */
export class RecentKeys {
  private readonly seen = new Map<string, number>();
  constructor(private readonly ttlMs = 10 * 60_000, private readonly max = 50_000) {}

  static digest(header: string): string {
    return crypto.createHash('sha256').update(header).digest('base64url').slice(0, 22);
  }

  remember(digest: string): void {
    if (this.seen.size >= this.max) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(digest, Date.now());
  }

  has(digest: string): boolean {
    const at = this.seen.get(digest);
    return at !== undefined && Date.now() - at < this.ttlMs;
  }
}

/** Token bucket per client; refill is computed lazily on each request and idle buckets are swept. */
export function rateLimiter(opts: { rps: number; burst: number; exempt: (path: string) => boolean; recentKeys: RecentKeys; now?: () => number }) {
  const buckets = new Map<string, Bucket>();
  const clock = opts.now ?? Date.now;
  const sweep = setInterval(() => {
    const cutoff = clock() - (opts.burst / opts.rps) * 1000 - 60_000;
    for (const [k, b] of buckets) if (b.at < cutoff) buckets.delete(k);
  }, 60_000);
  sweep.unref();

  const middleware = async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    if (opts.exempt(ctx.path)) return next();
    const auth = ctx.get('authorization');
    const digest = auth ? RecentKeys.digest(auth) : null;
    const key = digest && opts.recentKeys.has(digest) ? `k:${digest}` : `ip:${clientAddressKey(ctx.ip)}`;
    const now = clock();
    const b = buckets.get(key) ?? { tokens: opts.burst, at: now };
    b.tokens = Math.min(opts.burst, b.tokens + ((now - b.at) / 1000) * opts.rps);
    b.at = now;
    buckets.set(key, b);
    if (b.tokens < 1) {
      const retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / opts.rps));
      throw appError('RATE_LIMITED', `Rate limit exceeded; retry in ${retryAfter}s`, { headers: { 'Retry-After': String(retryAfter) } });
    }
    b.tokens -= 1;
    await next();
  };
  return Object.assign(middleware, { stop: () => clearInterval(sweep) });
}
