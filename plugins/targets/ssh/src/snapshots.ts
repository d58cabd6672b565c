import type { Json, PluginContext } from '@certctl/sdk';
import { isSnapshotId } from '@certctl/sdk/deploy';
import type { SnapshotEntry } from './remote-files.js';

/** Where a snapshot's backups live, recorded in the plugin's kv so `rollback` can find them later. */
export interface SnapshotRecord {
  host: string;
  port: number;
  entries: SnapshotEntry[];
}

// kv is shared by every instance of the plugin, so keys carry the instance id.
const scope = (ctx: PluginContext) => ctx.instanceId ?? 'no-instance';
const recordKey = (ctx: PluginContext, id: string) => `snapshot:${scope(ctx)}:${id}`;
const latestKey = (ctx: PluginContext) => `latest-snapshot:${scope(ctx)}`;

export { newSnapshotId } from '@certctl/sdk/deploy';

export async function loadSnapshot(ctx: PluginContext, id: string): Promise<SnapshotRecord | null> {
  if (!isSnapshotId(id)) return null;
  return ((await ctx.kv.get(recordKey(ctx, id))) as SnapshotRecord | undefined) ?? null;
}

/** Records `id` as the instance's current snapshot; answers the previous one (whose backups the caller removes). */
export async function saveSnapshot(ctx: PluginContext, id: string, record: SnapshotRecord): Promise<{ id: string; record: SnapshotRecord } | null> {
  const previousId = (await ctx.kv.get(latestKey(ctx))) as string | undefined;
  const previous = previousId ? await loadSnapshot(ctx, previousId) : null;
  await ctx.kv.set(recordKey(ctx, id), record as unknown as Json);
  await ctx.kv.set(latestKey(ctx), id);
  if (previousId) await ctx.kv.delete(recordKey(ctx, previousId));
  return previousId && previous ? { id: previousId, record: previous } : null;
}

export async function dropSnapshot(ctx: PluginContext, id: string): Promise<void> {
  await ctx.kv.delete(recordKey(ctx, id));
  if ((await ctx.kv.get(latestKey(ctx))) === id) await ctx.kv.delete(latestKey(ctx));
}
