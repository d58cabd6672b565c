import crypto from 'node:crypto';
import type { DeployRequest, DeployResult, Json, PluginContext } from '@certctl/sdk';
import { isSnapshotId, keyPairProblem, leafChainBundle, newSnapshotId, privateKeyBlock, pruneSnapshotIds, SNAPSHOT_TTL_SECONDS } from '@certctl/sdk/deploy';
import { CaddyAdmin, CaddyApiError, type LoadPemEntry } from './admin-api.js';

/**
 * api mode: the certificate and key go into the running Caddy as one
 * load_pem entry with a stable @id, replaced in place on each deploy. The
 * previous entry is kept in the plugin's kv (on the agent, next to the key it
 * came from) so `rollback` can put it back.
 */
interface ApiSnapshot {
  objectId: string;
  previous: LoadPemEntry | null;
}

const prefix = (ctx: PluginContext) => `caddy-api/${ctx.instanceId ?? '-'}/`;

async function saveSnapshot(ctx: PluginContext, snap: ApiSnapshot): Promise<string> {
  const id = newSnapshotId(ctx.clock.now());
  await ctx.kv.set(`${prefix(ctx)}${id}`, snap as unknown as Json, { ttlSeconds: SNAPSHOT_TTL_SECONDS });
  await pruneSnapshotIds(ctx, prefix(ctx), (old: string) => ctx.kv.delete(`${prefix(ctx)}${old}`));
  return id;
}

const sameEntry = (a: LoadPemEntry | null, b: LoadPemEntry) => !!a && a.certificate === b.certificate && a.key === b.key;

export async function apiDeploy(ctx: PluginContext, request: DeployRequest, adminUrl: string, objectId: string): Promise<DeployResult> {
  let entry: LoadPemEntry;
  try {
    entry = {
      '@id': objectId,
      certificate: leafChainBundle(request.certificatePem, request.chainPem),
      key: privateKeyBlock(await ctx.fs.read(request.keyPath)),
      tags: ['certctl', `certctl:${request.certificateId}`],
    };
  } catch (err) {
    return { status: 'failed', reason: `cannot prepare the certificate: ${(err as Error).message}`, rolledBack: false };
  }
  const mismatch = await keyPairProblem(request.certificatePem, entry.key);
  if (mismatch) return { status: 'failed', reason: `${mismatch}; nothing was sent to Caddy`, rolledBack: false };
  const admin = new CaddyAdmin(ctx, adminUrl);
  let current: LoadPemEntry | null;
  try {
    current = await admin.get(objectId);
  } catch (err) {
    return { status: 'failed', reason: (err as Error).message, rolledBack: false };
  }
  if (sameEntry(current, entry)) return { status: 'deployed', changed: false };

  let snapshotId: string;
  try {
    snapshotId = await saveSnapshot(ctx, { objectId, previous: current });
  } catch (err) {
    return { status: 'failed', reason: `could not save a snapshot of the loaded certificate, so nothing was changed: ${(err as Error).message}`, rolledBack: false };
  }
  try {
    await admin.put(entry, current !== null);
    if (!sameEntry(await admin.get(objectId), entry)) throw new CaddyApiError(`Caddy accepted the change but ${objectId} does not hold the new certificate`);
  } catch (err) {
    // Caddy keeps its previous config when a change fails to load; put the old entry back for the other failures.
    const undo = await apiRestore(ctx, adminUrl, { objectId, previous: current }).catch((e: Error) => e.message);
    return { status: 'failed', reason: `${(err as Error).message}${undo === null ? '' : `; restoring the previous entry failed: ${undo}`}`, rolledBack: undo === null };
  }
  ctx.log.info('caddy: certificate loaded through the admin API', { object_id: objectId, snapshot_id: snapshotId });
  return { status: 'deployed', changed: true, snapshotId };
}

/** Puts the snapshot's entry back (or removes ours when there was none); null when done, else why not. */
async function apiRestore(ctx: PluginContext, adminUrl: string, snap: ApiSnapshot): Promise<string | null> {
  const admin = new CaddyAdmin(ctx, adminUrl);
  const now = await admin.get(snap.objectId);
  if (snap.previous === null) {
    if (now) await admin.remove(snap.objectId);
  } else if (!sameEntry(now, snap.previous)) await admin.put(snap.previous, now !== null);
  return null;
}

export async function apiRollback(ctx: PluginContext, adminUrl: string, snapshotId: string): Promise<{ ok: boolean; reason?: string }> {
  const snap = isSnapshotId(snapshotId) ? ((await ctx.kv.get(`${prefix(ctx)}${snapshotId}`)) as unknown as ApiSnapshot | undefined) : undefined;
  if (!snap) return { ok: false, reason: `snapshot ${snapshotId} does not exist (or has expired)` };
  try {
    await apiRestore(ctx, adminUrl, snap);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  return { ok: true };
}

/** The SHA-256 fingerprint of the certificate Caddy holds under our @id. */
export async function apiLoadedFingerprint(ctx: PluginContext, adminUrl: string, objectId: string): Promise<string | null> {
  const entry = await new CaddyAdmin(ctx, adminUrl).get(objectId);
  return entry ? new crypto.X509Certificate(entry.certificate).fingerprint256.replace(/:/g, '').toLowerCase() : null;
}
