import type { Json, PluginContext } from '@certctl/sdk';
import { isSnapshotId, pruneSnapshotIds, SNAPSHOT_TTL_SECONDS } from '@certctl/sdk/deploy';

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

export { newSnapshotId } from '@certctl/sdk/deploy';

export async function loadSnapshot(ctx: PluginContext, id: string): Promise<KeystoreSnapshot | null> {
  if (!isSnapshotId(id)) return null;
  return ((await ctx.kv.get(`${prefix(ctx)}${id}`)) as unknown as KeystoreSnapshot | undefined) ?? null;
}

/** Records a snapshot and drops the oldest beyond SNAPSHOTS_KEPT, removing their backup files. */
export async function saveSnapshot(ctx: PluginContext, id: string, snap: KeystoreSnapshot): Promise<void> {
  await ctx.kv.set(`${prefix(ctx)}${id}`, snap as unknown as Json, { ttlSeconds: SNAPSHOT_TTL_SECONDS });
  await pruneSnapshotIds(ctx, prefix(ctx), (old: string) => dropSnapshot(ctx, old));
}

export async function dropSnapshot(ctx: PluginContext, id: string): Promise<void> {
  const snap = await loadSnapshot(ctx, id);
  // The backup holds the previous private key: a failed removal is worth a warning, not silence.
  if (snap?.backup) await ctx.fs.remove(snap.backup).catch((err: unknown) => ctx.log.warn('jks: could not remove a keystore backup', { path: snap.backup!, error: String((err as Error)?.message ?? err) }));
  await ctx.kv.delete(`${prefix(ctx)}${id}`);
}
