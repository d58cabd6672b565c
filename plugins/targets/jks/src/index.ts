import { definePlugin, type DeployRequest, type DeployResult, type PluginContext } from '@certctl/sdk';
import { DeployConfigError, isMissingFile, leafChainBundle } from '@certctl/sdk/deploy';
import { readConfig, type KeystoreConfig } from './config.js';
import { KeystoreTools } from './keytool.js';
import { dropSnapshot, loadSnapshot, newSnapshotId, saveSnapshot, type KeystoreSnapshot } from './snapshots.js';

/**
 * Java keystore (JKS or PKCS12): the agent's key and the certificate chain are
 * bundled as PKCS#12 with openssl, and keytool imports that entry under the
 * alias, replacing the previous one. The old entry is exported first, so a
 * failed import, a mismatch after import, or a failed reload puts it back.
 */

const failed = (reason: string, rolledBack: boolean): DeployResult => ({ status: 'failed', reason, rolledBack });
const tail = (output: string) => output.split('\n').filter((l) => l.trim() && !/^Warning:|^The JKS keystore uses a proprietary format|migrate to PKCS12/i.test(l)).slice(-3).join(' ').slice(0, 400);

async function keystoreExists(ctx: PluginContext, cfg: KeystoreConfig): Promise<boolean> {
  try {
    await ctx.fs.read(cfg.keystorePath);
    return true;
  } catch (err) {
    if (isMissingFile(err)) return false;
    throw err;
  }
}

/** Puts a snapshot back: the backup entry re-imported over the alias, or the alias removed when it was new. Null when done. */
async function restore(tools: KeystoreTools, snap: KeystoreSnapshot): Promise<string | null> {
  if (snap.backup) {
    const imp = await tools.importAlias(snap.backup);
    return imp.ok ? null : `cannot re-import the previous entry: ${tail(imp.output)}`;
  }
  const del = await tools.deleteAlias();
  if (del.ok || (await tools.aliasFingerprint()) === null) return null;
  return `cannot remove the new entry: ${tail(del.output)}`;
}

async function runReload(ctx: PluginContext, cfg: KeystoreConfig): Promise<string | null> {
  if (!cfg.reload) return null;
  const [command, ...args] = cfg.reload.argv;
  const r = await ctx.exec.run(command, args, { timeoutMs: 60_000 });
  return r.exitCode === 0 ? null : `reload command ${command} exited with ${r.exitCode}: ${(r.stderr || r.stdout).trim().slice(-400)}`;
}

async function deployWith(ctx: PluginContext, cfg: KeystoreConfig, tools: KeystoreTools, request: DeployRequest, tag: string): Promise<DeployResult> {
  let current: string | null = null;
  if (await keystoreExists(ctx, cfg)) {
    const state = await tools.current();
    if ('problem' in state) return failed(`cannot open ${cfg.keystorePath} as ${cfg.storeType} with the configured password; nothing was changed: ${tail(state.problem)}`, false);
    current = state.fingerprint;
  }
  const expected = request.fingerprintSha256.replace(/:/g, '').toLowerCase();
  if (current === expected) return { status: 'deployed', changed: false };

  // Backup of the old entry first: without one there is no way back, so nothing changes.
  const backup = current === null ? null : `${cfg.workDir}/.certctl-${tag}.backup.p12`;
  if (backup) {
    const exp = await tools.exportAlias(backup);
    if (!exp.ok) return failed(`cannot back up the current "${cfg.alias}" entry, so nothing was changed: ${tail(exp.output)}`, false);
  }
  const snap: KeystoreSnapshot = { keystorePath: cfg.keystorePath, alias: cfg.alias, backup };

  const chainFile = `${cfg.workDir}/.certctl-${tag}.chain.pem`;
  const bundle = `${cfg.workDir}/.certctl-${tag}.p12`;
  let kept = false;
  try {
    await ctx.fs.write(chainFile, leafChainBundle(request.certificatePem, request.chainPem), { mode: 0o600 });
    const built = await tools.buildPkcs12(chainFile, request.keyPath, bundle);
    if (!built.ok) return failed(`openssl could not bundle the key and certificate, so nothing was changed: ${tail(built.output)}`, false);

    const undo = async (reason: string): Promise<DeployResult> => {
      const problem = await restore(tools, snap);
      if (problem) return failed(`${reason}; restoring the previous entry also failed: ${problem}`, false);
      const again = await runReload(ctx, cfg);
      return failed(`${reason}; the previous entry was restored${again ? ` (but reloading it failed: ${again})` : ''}`, true);
    };
    const imp = await tools.importAlias(bundle);
    if (!imp.ok) return await undo(`keytool could not import the new entry: ${tail(imp.output)}`);
    const now = await tools.aliasFingerprint();
    if (now !== expected) return await undo(`after the import "${cfg.alias}" holds ${now ?? 'nothing'}, not ${expected}`);
    const reload = await runReload(ctx, cfg);
    if (reload) return await undo(reload);
    await saveSnapshot(ctx, tag, snap);
    kept = true;
  } finally {
    await ctx.fs.remove(chainFile).catch(() => {});
    await ctx.fs.remove(bundle).catch(() => {});
    // A failed deploy has nothing to roll back to later, so its backup goes too.
    if (!kept && backup) await ctx.fs.remove(backup).catch(() => {});
  }
  ctx.log.info('keystore: entry imported', { keystore: cfg.keystorePath, alias: cfg.alias, snapshot_id: tag });
  return { status: 'deployed', changed: true, snapshotId: tag };
}

/** Opens the tools (password file) around `run`, turning config problems into a reason. */
async function withTools<T>(ctx: PluginContext, tag: string, run: (cfg: KeystoreConfig, tools: KeystoreTools) => Promise<T>): Promise<T | { problem: string }> {
  let cfg: KeystoreConfig;
  try {
    cfg = await readConfig(ctx);
  } catch (err) {
    if (err instanceof DeployConfigError) return { problem: `invalid config: ${err.message}` };
    throw err;
  }
  let tools: KeystoreTools;
  try {
    tools = await KeystoreTools.open(ctx, cfg, tag);
  } catch (err) {
    return { problem: `cannot write to work_dir ${cfg.workDir}: ${(err as Error).message}` };
  }
  try {
    return await run(cfg, tools);
  } finally {
    await tools.close().catch(() => {});
  }
}

export default definePlugin({
  kind: 'target',

  async deploy(request, ctx) {
    const tag = newSnapshotId(ctx.clock.now());
    const r = await withTools(ctx, tag, (cfg, tools) => deployWith(ctx, cfg, tools, request, tag));
    return 'problem' in r ? failed(r.problem, false) : r;
  },

  async rollback(request, ctx) {
    const snap = await loadSnapshot(ctx, request.snapshotId);
    if (!snap) return { ok: false, reason: `snapshot ${request.snapshotId} does not exist (or has expired)` };
    const r = await withTools(ctx, newSnapshotId(ctx.clock.now()), async (cfg, tools) => {
      if (snap.keystorePath !== cfg.keystorePath || snap.alias !== cfg.alias) return { ok: false, reason: 'the snapshot is of another keystore or alias than the current config' };
      const problem = await restore(tools, snap);
      if (problem) return { ok: false, reason: problem };
      await dropSnapshot(ctx, request.snapshotId);
      const reload = await runReload(ctx, cfg);
      return reload ? { ok: false, reason: `entry restored, but ${reload}` } : { ok: true };
    });
    return 'problem' in r ? { ok: false, reason: r.problem } : r;
  },

  /** Compares the certificate under the alias with the expected fingerprint. */
  async verify(request, ctx) {
    const r = await withTools(ctx, newSnapshotId(ctx.clock.now()), async (cfg, tools) => {
      const observed = await tools.aliasFingerprint();
      const expected = request.fingerprintSha256.replace(/:/g, '').toLowerCase();
      if (observed === null) return { status: 'failed' as const, reason: `${cfg.keystorePath} has no readable "${cfg.alias}" entry` };
      return observed === expected ? { status: 'success' as const, observedFingerprintSha256: observed } : { status: 'failed' as const, observedFingerprintSha256: observed, reason: `"${cfg.alias}" holds a different certificate` };
    });
    return 'problem' in r ? { status: 'failed', reason: r.problem } : r;
  },

  /** The config is usable and, when the keystore exists, it opens with the password. */
  async validate(_request, ctx) {
    const r = await withTools(ctx, newSnapshotId(ctx.clock.now()), async (cfg, tools) => {
      if (!(await keystoreExists(ctx, cfg))) return { ok: true as const };
      const open = await tools.canOpen();
      return open.ok ? { ok: true as const } : { ok: false as const, reason: `cannot open ${cfg.keystorePath}: ${tail(open.output)}` };
    });
    return 'problem' in r ? { ok: false, reason: r.problem } : r;
  },
});
