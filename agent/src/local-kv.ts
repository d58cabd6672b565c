import path from 'node:path';
import type { Json } from '@certctl/sdk';
import { kvIncrementProblem, kvKeyProblem, kvValueProblem } from '@certctl/sdk/policy';
import { readOptional, writePrivateFile } from './private-files.js';

export const LOCAL_KV_LIMITS = { maxKeyLength: 256, maxValueBytes: 1024 * 1024, maxKeysPerPlugin: 10_000, maxFileBytes: 32 * 1024 * 1024, maxTtlSeconds: 10 * 365 * 24 * 3600 };

/** A request the store refuses (bad key, too big, full): the broker reports it as capability_denied. */
export class LocalKvRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalKvRefused';
  }
}

interface Entry {
  v: Json;
  /** Expiry, epoch ms. */
  exp?: number;
}

/**
 * The `kv` capability on the agent: one JSON file per plugin in the state
 * directory (0600), rewritten atomically on every change. The deploy pipeline
 * keeps its snapshots here (previous certificate and key files), so they must
 * survive an agent restart and stay readable by the agent's user only.
 */
export class LocalKv {
  private readonly cache = new Map<string, Map<string, Entry>>();
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly dir: string, private readonly now: () => number = Date.now) {}

  private file(pluginId: string): string {
    if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(pluginId)) throw new LocalKvRefused(`plugin id ${JSON.stringify(pluginId)} cannot name a kv file`);
    return path.join(this.dir, `${pluginId}.json`);
  }

  private async load(pluginId: string): Promise<Map<string, Entry>> {
    let map = this.cache.get(pluginId);
    if (map) return map;
    const text = await readOptional(this.file(pluginId));
    map = new Map(Object.entries(text ? (JSON.parse(text) as Record<string, Entry>) : {}));
    this.cache.set(pluginId, map);
    return map;
  }

  /** One operation at a time per plugin, so writes never interleave. */
  private serial<T>(pluginId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(pluginId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.queues.set(pluginId, next.catch(() => {}));
    return next;
  }

  private live(e: Entry | undefined): e is Entry {
    return e !== undefined && (e.exp === undefined || e.exp > this.now());
  }

  /** The kernel's kv rules (@certctl/sdk/policy), so a plugin meets the same ones on the agent. */
  private check(problem: string | null): void {
    if (problem) throw new LocalKvRefused(problem);
  }

  private checkKey(key: unknown): string {
    this.check(kvKeyProblem(key, LOCAL_KV_LIMITS.maxKeyLength));
    return key as string;
  }

  /** Stores one entry, within the key quota; the cache is put back if the file cannot be written. */
  private async put(pluginId: string, map: Map<string, Entry>, key: string, next: Entry): Promise<void> {
    if (!map.has(key) && map.size >= LOCAL_KV_LIMITS.maxKeysPerPlugin) throw new LocalKvRefused(`the plugin already keeps ${LOCAL_KV_LIMITS.maxKeysPerPlugin} keys`);
    const before = map.get(key);
    map.set(key, next);
    try {
      await this.persist(pluginId, map);
    } catch (err) {
      if (before) map.set(key, before);
      else map.delete(key);
      throw err;
    }
  }

  /** Removes one entry; the cache keeps it if the file cannot be written (the call fails and nothing changed). False: no such key. */
  private async drop(pluginId: string, map: Map<string, Entry>, key: string): Promise<boolean> {
    const before = map.get(key);
    if (!map.delete(key)) return false;
    try {
      await this.persist(pluginId, map);
    } catch (err) {
      map.set(key, before!);
      throw err;
    }
    return true;
  }

  private async persist(pluginId: string, map: Map<string, Entry>): Promise<void> {
    for (const [k, e] of map) if (!this.live(e)) map.delete(k);
    const text = JSON.stringify(Object.fromEntries(map));
    if (Buffer.byteLength(text) > LOCAL_KV_LIMITS.maxFileBytes) throw new LocalKvRefused(`the plugin's kv store would exceed ${LOCAL_KV_LIMITS.maxFileBytes} bytes`);
    await writePrivateFile(this.file(pluginId), text);
  }

  get(pluginId: string, key: string): Promise<Json | undefined> {
    this.checkKey(key);
    return this.serial(pluginId, async () => {
      const e = (await this.load(pluginId)).get(key);
      return this.live(e) ? e.v : undefined;
    });
  }

  set(pluginId: string, key: string, value: Json, ttlSeconds?: number): Promise<void> {
    this.checkKey(key);
    const text = JSON.stringify(value) as string | undefined;
    this.check(kvValueProblem(text, ttlSeconds, LOCAL_KV_LIMITS));
    return this.serial(pluginId, async () => {
      await this.put(pluginId, await this.load(pluginId), key, { v: JSON.parse(text!) as Json, ...(ttlSeconds !== undefined ? { exp: this.now() + ttlSeconds * 1000 } : {}) });
    });
  }

  delete(pluginId: string, key: string): Promise<void> {
    this.checkKey(key);
    return this.serial(pluginId, async () => {
      await this.drop(pluginId, await this.load(pluginId), key);
    });
  }

  /** get and delete in one serial step: the kernel's take, for one agent process. */
  take(pluginId: string, key: string): Promise<Json | undefined> {
    this.checkKey(key);
    return this.serial(pluginId, async () => {
      const map = await this.load(pluginId);
      const e = map.get(key);
      if (!(await this.drop(pluginId, map, key))) return undefined;
      return this.live(e) ? e.v : undefined;
    });
  }

  /** The kernel's increment: a live number keeps its expiry, anything else restarts at `by`. */
  increment(pluginId: string, key: string, by = 1, ttlSeconds?: number): Promise<number> {
    this.checkKey(key);
    this.check(kvIncrementProblem(by) ?? kvValueProblem(String(by), ttlSeconds, LOCAL_KV_LIMITS));
    return this.serial(pluginId, async () => {
      const map = await this.load(pluginId);
      const e = map.get(key);
      const continues = this.live(e) && typeof e.v === 'number';
      const next: Entry = continues ? { ...e, v: (e.v as number) + by } : { v: by, ...(ttlSeconds !== undefined ? { exp: this.now() + ttlSeconds * 1000 } : {}) };
      await this.put(pluginId, map, key, next);
      return next.v as number;
    });
  }

  list(pluginId: string, prefix = ''): Promise<string[]> {
    return this.serial(pluginId, async () => [...(await this.load(pluginId))].filter(([k, e]) => k.startsWith(prefix) && this.live(e)).map(([k]) => k).sort());
  }
}
