import type { Json, PluginContext } from '../contract.js';

/**
 * Snapshots of the files a deploy is about to replace, kept in the plugin's kv
 * (on the agent, so old keys stay on the machine they belong to). A snapshot is
 * one index entry plus the file contents in chunks under it, so files larger than
 * one kv value still fit. Ids start with the time, so listing sorts them oldest
 * first and pruning keeps the newest few per instance.
 */

export interface SnapshotFile {
  path: string;
  /** False: the deploy created this file, so restoring removes it. */
  existed: boolean;
  sha256: string | null;
  chunks: number;
}

export interface SnapshotIndex {
  v: 1;
  created_at: string;
  files: SnapshotFile[];
}

const CHUNK_CHARS = 24 * 1024; // JSON escaping can double a string; the kv takes 64 KiB per value
export const SNAPSHOT_TTL_SECONDS = 30 * 24 * 3600;
export const SNAPSHOTS_KEPT = 5;
const SNAPSHOT_ID = /^[0-9a-z]{9}-[0-9a-f]{12}$/;

const prefix = (ctx: PluginContext) => `certctl.deploy/${ctx.instanceId ?? '-'}/`;
const indexKey = (ctx: PluginContext, id: string) => `${prefix(ctx)}${id}`;
const chunkKey = (ctx: PluginContext, id: string, file: number, chunk: number) => `${prefix(ctx)}${id}/${file}/${chunk}`;

function randomHex(bytes: number): string {
  const c = (globalThis as { crypto?: { getRandomValues?(a: Uint8Array): Uint8Array } }).crypto;
  const buf = new Uint8Array(bytes);
  if (c?.getRandomValues) c.getRandomValues(buf);
  else for (let i = 0; i < bytes; i++) buf[i] = Math.floor(Math.random() * 256);
  return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function newSnapshotId(now: number): string {
  return `${Math.max(0, Math.floor(now)).toString(36).padStart(9, '0')}-${randomHex(6)}`;
}

export const isSnapshotId = (id: unknown): id is string => typeof id === 'string' && SNAPSHOT_ID.test(id);

/**
 * For targets that keep their own kind of snapshot under their own kv prefix (an admin
 * API's previous entry, a keystore backup): keeps the newest SNAPSHOTS_KEPT and drops the
 * rest, oldest first, calling `drop` for each (which must delete its kv record).
 */
export async function pruneSnapshotIds(ctx: PluginContext, under: string, drop: (id: string) => Promise<void>): Promise<void> {
  const ids = (await ctx.kv.list(under)).map((k) => k.slice(under.length)).filter(isSnapshotId).sort();
  for (const old of ids.slice(0, Math.max(0, ids.length - SNAPSHOTS_KEPT))) await drop(old);
}

export interface CapturedFile {
  path: string;
  content: string | null;
  sha256: string | null;
}

export async function saveSnapshot(ctx: PluginContext, files: CapturedFile[]): Promise<string> {
  const id = newSnapshotId(ctx.clock.now());
  const ttl = { ttlSeconds: SNAPSHOT_TTL_SECONDS };
  const index: SnapshotIndex = { v: 1, created_at: new Date(ctx.clock.now()).toISOString(), files: [] };
  for (const [i, f] of files.entries()) {
    const content = f.content ?? '';
    const chunks = f.content === null ? 0 : Math.max(1, Math.ceil(content.length / CHUNK_CHARS));
    for (let c = 0; c < chunks; c++) await ctx.kv.set(chunkKey(ctx, id, i, c), content.slice(c * CHUNK_CHARS, (c + 1) * CHUNK_CHARS), ttl);
    index.files.push({ path: f.path, existed: f.content !== null, sha256: f.sha256, chunks });
  }
  // The index goes last: a snapshot without one was never complete and is never restored.
  await ctx.kv.set(indexKey(ctx, id), index as unknown as Json, ttl);
  return id;
}

export async function loadSnapshot(ctx: PluginContext, id: string): Promise<{ files: CapturedFile[] } | { missing: string }> {
  if (!isSnapshotId(id)) return { missing: 'not a deploy snapshot id' };
  const index = (await ctx.kv.get(indexKey(ctx, id))) as unknown as SnapshotIndex | undefined;
  if (!index || index.v !== 1 || !Array.isArray(index.files)) return { missing: `snapshot ${id} does not exist (or has expired)` };
  const files: CapturedFile[] = [];
  for (const [i, f] of index.files.entries()) {
    if (!f.existed) {
      files.push({ path: f.path, content: null, sha256: null });
      continue;
    }
    let content = '';
    for (let c = 0; c < f.chunks; c++) {
      const part = await ctx.kv.get(chunkKey(ctx, id, i, c));
      if (typeof part !== 'string') return { missing: `snapshot ${id} is incomplete (${f.path})` };
      content += part;
    }
    files.push({ path: f.path, content, sha256: f.sha256 });
  }
  return { files };
}

/** Drops all but the newest SNAPSHOTS_KEPT snapshots of this instance (index and chunks). */
export async function pruneSnapshots(ctx: PluginContext): Promise<void> {
  const keys = await ctx.kv.list(prefix(ctx));
  await pruneSnapshotIds(ctx, prefix(ctx), async (id) => {
    for (const key of keys) if (key.slice(prefix(ctx).length).split('/')[0] === id) await ctx.kv.delete(key);
  });
}
