import { describe, expect, it } from 'vitest';
import { pooledRandomBytes } from './random-pool.js';

describe('pooledRandomBytes', () => {
  it('hands out fresh bytes of the asked length, across block boundaries, never the same twice', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const b = pooledRandomBytes(16);
      expect(b).toHaveLength(16);
      seen.add(b.toString('hex'));
    }
    expect(seen.size).toBe(3000);
    expect(pooledRandomBytes(10_000)).toHaveLength(10_000);
  });

  it('returns a copy: changing it changes nothing handed out later', () => {
    const a = pooledRandomBytes(8);
    a.fill(0);
    expect(pooledRandomBytes(8).equals(Buffer.alloc(8))).toBe(false);
  });
});
