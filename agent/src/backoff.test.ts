import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Backoff, ReachabilityLog, sleep } from './backoff.js';

describe('backoff', () => {
  it('doubles up to the cap, with jitter between half and all of each step', () => {
    const low = new Backoff(500, 8000, () => 0);
    expect([1, 2, 3, 4, 5, 6].map(() => low.next())).toEqual([250, 500, 1000, 2000, 4000, 4000]);
    const high = new Backoff(500, 8000, () => 1);
    expect([1, 2, 3, 4, 5, 6].map(() => high.next())).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    high.reset();
    expect(high.next()).toBe(500);
  });

  it('sleep ends early when aborted', async () => {
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 20);
    expect(await sleep(10_000, ac.signal)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await sleep(1, new AbortController().signal)).toBe(true);
  });

  it('logs an outage once, not per attempt, and once when the server is back', () => {
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const reach = new ReachabilityLog(log);
    for (let i = 0; i < 5; i++) reach.failed(new Error('ECONNREFUSED'), 100);
    reach.succeeded();
    reach.succeeded();
    const visible = lines.filter((l) => l.level >= 30).map((l) => l.msg);
    expect(visible).toEqual([expect.stringMatching(/unreachable; retrying with backoff/), 'control plane reachable again']);
  });
});
