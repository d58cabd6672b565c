import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalKv, LocalKvRefused } from './local-kv.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-kv-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('agent-local kv', () => {
  it('persists per plugin in a 0600 file that survives a restart', async () => {
    const dir = path.join(tmp, 'kv');
    const kv = new LocalKv(dir);
    await kv.set('target-a', 'snapshot:1', { files: [{ path: '/etc/x', content: 'old' }] });
    await kv.set('target-a', 'other', null);
    await kv.set('target-b', 'snapshot:1', 'b');
    expect(fs.statSync(path.join(dir, 'target-a.json')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const again = new LocalKv(dir);
    expect(await again.get('target-a', 'snapshot:1')).toEqual({ files: [{ path: '/etc/x', content: 'old' }] });
    expect(await again.get('target-a', 'other')).toBeNull();
    expect(await again.get('target-a', 'missing')).toBeUndefined();
    expect(await again.list('target-a', 'snap')).toEqual(['snapshot:1']);
    expect(await again.get('target-b', 'other')).toBeUndefined();
    await again.delete('target-a', 'snapshot:1');
    expect(await new LocalKv(dir).list('target-a')).toEqual(['other']);
  });

  it('expires keys by TTL and refuses bad keys, values and plugin ids', async () => {
    let now = 1_000_000;
    const kv = new LocalKv(path.join(tmp, 'ttl'), () => now);
    await kv.set('p', 't', 1, 10);
    now += 11_000;
    expect(await kv.get('p', 't')).toBeUndefined();
    expect(() => kv.set('p', '', 1)).toThrow(LocalKvRefused);
    expect(() => kv.set('p', 'a\0b', 1)).toThrow(LocalKvRefused);
    expect(() => kv.set('p', 'big', 'x'.repeat(1024 * 1024 + 1))).toThrow(/byte limit/);
    expect(() => kv.set('p', 'k', 1, -1)).toThrow(/ttlSeconds/);
    await expect(kv.get('../evil', 'k')).rejects.toBeInstanceOf(LocalKvRefused);
  });

  it('takes a key once and counts with a fixed window, like the kernel kv', async () => {
    let now = 1_000_000;
    const kv = new LocalKv(path.join(tmp, 'atomic'), () => now);
    await kv.set('p', 'token', 'once');
    const takes = await Promise.all([kv.take('p', 'token'), kv.take('p', 'token')]);
    expect(takes).toEqual(['once', undefined]);
    expect(await Promise.all([kv.increment('p', 'n', 1, 10), kv.increment('p', 'n', 1, 10)])).toEqual([1, 2]);
    now += 11_000;
    expect(await kv.increment('p', 'n', 5)).toBe(5);
    expect(() => kv.increment('p', 'n', 0.5)).toThrow(/safe integer/);
  });

  it('a take or delete whose file write fails changes nothing: the key is still there', async () => {
    const dir = path.join(tmp, 'unwritable');
    const kv = new LocalKv(dir);
    await kv.set('p', 'token', 'once');
    // A directory where the file goes: the atomic rename over it fails.
    fs.rmSync(path.join(dir, 'p.json'));
    fs.mkdirSync(path.join(dir, 'p.json'));
    await expect(kv.take('p', 'token')).rejects.toThrow();
    await expect(kv.delete('p', 'token')).rejects.toThrow();
    expect(await kv.get('p', 'token')).toBe('once');
    fs.rmdirSync(path.join(dir, 'p.json'));
    expect(await kv.take('p', 'token')).toBe('once');
    expect(await new LocalKv(dir).get('p', 'token')).toBeUndefined();
  });
});
