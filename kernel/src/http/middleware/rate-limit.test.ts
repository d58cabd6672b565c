import { describe, expect, it } from 'vitest';
import { AppError } from '../../errors.js';
import type { Ctx } from '../route.js';
import { RecentKeys, rateLimiter } from './rate-limit.js';

/** The token bucket on a fake clock: exact counts, no timing assumptions. */
describe('rate limiter', () => {
  const ctx = (path = '/api/v1/x', ip = '192.0.2.1') => ({ path, ip, get: () => '' }) as unknown as Ctx;

  it('allows the burst, then refills at rps; Retry-After says when a token is back', async () => {
    let now = 1_000_000;
    const limit = rateLimiter({ rps: 2, burst: 3, exempt: (p) => p === '/health', recentKeys: new RecentKeys(), now: () => now });
    const hit = () => limit(ctx(), async () => {}).then(() => 200, (err: AppError) => {
      expect(err.headers).toMatchObject({ 'Retry-After': '1' });
      return 429;
    });
    try {
      expect([await hit(), await hit(), await hit(), await hit()]).toEqual([200, 200, 200, 429]);
      now += 499; // 0.998 tokens: still short of one
      expect(await hit()).toBe(429);
      now += 1; // 1.0
      expect(await hit()).toBe(200);
      now += 60_000; // refill stops at the burst
      expect([await hit(), await hit(), await hit(), await hit()]).toEqual([200, 200, 200, 429]);
      // Exempt paths and other clients are untouched.
      expect(await limit(ctx('/health'), async () => {}).then(() => 200)).toBe(200);
      expect(await limit(ctx('/api/v1/x', '192.0.2.2'), async () => {}).then(() => 200)).toBe(200);
    } finally {
      limit.stop();
    }
  });

  it('counts an IPv6 client by its /64, an IPv4-mapped one as its IPv4 address', async () => {
    const limit = rateLimiter({ rps: 1, burst: 2, exempt: () => false, recentKeys: new RecentKeys(), now: () => 1_000_000 });
    const hit = (ip: string) => limit(ctx('/acme/new-nonce', ip), async () => {}).then(() => 200, () => 429);
    try {
      // Rotating addresses inside one /64 shares one bucket; the next /64 has its own.
      expect([await hit('2001:db8:1:2::1'), await hit('2001:db8:1:2:ffff::9'), await hit('2001:0db8:0001:0002:0:0:0:abcd')]).toEqual([200, 200, 429]);
      expect(await hit('2001:db8:1:3::1')).toBe(200);
      expect([await hit('::ffff:192.0.2.7'), await hit('192.0.2.7'), await hit('::ffff:192.0.2.7')]).toEqual([200, 200, 429]);
    } finally {
      limit.stop();
    }
  });
});
