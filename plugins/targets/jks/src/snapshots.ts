import crypto from 'node:crypto';
import type { Json, PluginContext } from '@certctl/sdk';
import { isSnapshotId, SNAPSHOT_TTL_SECONDS, SNAPSHOTS_KEPT } from '@certctl/sdk/deploy';

/**
 * A deploy's undo record: the keystore and alias it changed and where the old
 * entry was exported to (a password-protected PKCS#12 in work_dir), or null when
 * the alias was new. The record is in the plugin's kv; the backup stays a file
 * so the old key is never copied anywhere but the agent's own work directory.
 */
export interface KeystoreSnapshot {
  keystorePath: string;
  alias: string;
  backup: string | null;
}

const prefix = (ctx: PluginContext) => `jks/${ctx.instanceId ?? '-'}/`;

export const newSnapshotId = (now: number) => `${Math.floor(now).toString(36).padStart(9, '0')}-${crypto.randomBytes(6).toString('hex')}`;

export async function loadSnapshot(ctx: PluginContext, id: string): Promise<KeystoreSnapshot | null> {
  if (!isSnapshotId(id)) return null;
  return ((await ctx.kv.get(`${prefix(ctx)}${id}`)) as unknown as KeystoreSnapshot | undefined) ?? null;
}

/** Records a snapshot and drops the oldest beyond SNAPSHOTS_KEPT, removing their backup files. */
export async function saveSnapshot(ctx: PluginContext, id: string, snap: KeystoreSnapshot): Promise<void> {
  await ctx.kv.set(`${prefix(ctx)}${id}`, snap as unknown as Json, { ttlSeconds: SNAPSHOT_TTL_SECONDS });
  const ids = (await ctx.kv.list(prefix(ctx))).map((k) => k.slice(prefix(ctx).length)).filter(isSnapshotId).sort();
  for (const old of ids.slice(0, Math.max(0, ids.length - SNAPSHOTS_KEPT))) await dropSnapshot(ctx, old);
}

export async function dropSnapshot(ctx: PluginContext, id: string): Promise<void> {
  const snap = await loadSnapshot(ctx, id);
  if (snap?.backup) await ctx.fs.remove(snap.backup).catch(() => {});
  await ctx.kv.delete(`${prefix(ctx)}${id}`);
}
