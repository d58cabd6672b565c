import crypto from 'node:crypto';
import { appError } from '../../errors.js';
import type { Ctx } from '../route.js';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token bucket per client (API key when one is presented, else address).
 * Refill is computed lazily on each request; idle buckets are swept.
 */
export function rateLimiter(opts: { rps: number; burst: number; exempt: (path: string) => boolean }) {
  const buckets = new Map<string, Bucket>();
  const sweep = setInterval(() => {
    const cutoff = Date.now() - (opts.burst / opts.rps) * 1000 - 60_000;
    for (const [k, b] of buckets) if (b.at < cutoff) buckets.delete(k);
  }, 60_000);
  sweep.unref();

  const middleware = async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    if (opts.exempt(ctx.path)) return next();
    const auth = ctx.get('authorization');
    const key = auth ? 'k:' + crypto.createHash('sha256').update(auth).digest('base64url').slice(0, 22) : 'ip:' + ctx.ip;
    const now = Date.now();
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
