import crypto from 'node:crypto';
import { definePlugin, type DeployRequest, type DeployResult, type PluginContext } from '@certctl/sdk';
import { chainBundle, leafChainBundle, pemBlocks, privateKeyBlock } from '@certctl/sdk/deploy';
import { readConfig, SshConfigError, type SshTargetConfig } from './config.js';
import { alreadyInPlace, discardBackups, placeFiles, restoreFiles, type PlannedFile } from './remote-files.js';
import { dropSnapshot, loadSnapshot, newSnapshotId, saveSnapshot } from './snapshots.js';
import { SshSession } from './ssh-session.js';

/**
 * Agentless target: a proxy agent connects to the server over SSH (ssh2), places
 * the certificate, chain and key files over SFTP atomically, and runs the reload
 * command there. The host key is pinned by fingerprint. The plugin opens its own
 * TCP connection (ssh2), which the capability broker does not mediate: it is
 * first-party code running in the agent's worker runtime, and it connects only to
 * the host and port the operator configured.
 */

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const failed = (reason: string, rolledBack: boolean): DeployResult => ({ status: 'failed', reason, rolledBack });

/** Time left for this call (the host's deadline), capped by the configured timeout. */
const budget = (ctx: PluginContext, cfg: SshTargetConfig) => Math.max(1_000, Math.min(cfg.timeoutMs, ctx.clock.deadline() - ctx.clock.now() - 500));

function planFiles(cfg: SshTargetConfig, request: DeployRequest, keyPem: string): PlannedFile[] {
  const file = (path: string, text: string, newMode: number): PlannedFile => ({ path, content: Buffer.from(text, 'utf8'), newMode });
  const files = [
    file(cfg.certPath, cfg.chainPath ? leafChainBundle(request.certificatePem) : leafChainBundle(request.certificatePem, request.chainPem), cfg.certMode),
    file(cfg.keyPath, privateKeyBlock(keyPem), cfg.keyMode),
  ];
  if (cfg.chainPath) files.push(file(cfg.chainPath, chainBundle(request.chainPem), cfg.certMode));
  return files;
}

async function runReload(session: SshSession, line: string, timeoutMs: number): Promise<string | null> {
  const r = await session.exec(line, timeoutMs);
  if (r.exitCode === 0) return null;
  const output = (r.stderr.trim() || r.stdout.trim()).slice(-400);
  return `the reload command ${r.exitCode === null ? `was stopped (${r.signal ?? 'no exit status'})` : `exited with ${r.exitCode}`}${output ? `: ${output}` : ''}`;
}

async function deploy(request: DeployRequest, ctx: PluginContext): Promise<DeployResult> {
  let cfg: SshTargetConfig;
  let files: PlannedFile[];
  try {
    cfg = await readConfig(ctx);
    files = planFiles(cfg, request, await ctx.fs.read(request.keyPath));
  } catch (err) {
    return failed(err instanceof SshConfigError ? `invalid config: ${err.message}` : message(err), false);
  }
  const timeoutMs = budget(ctx, cfg);
  let session: SshSession;
  try {
    session = await SshSession.open(cfg, timeoutMs);
  } catch (err) {
    return failed(message(err), false);
  }
  try {
    if (await alreadyInPlace(session.fs, files)) {
      ctx.log.info('ssh deploy: the remote files already hold this certificate; nothing written, nothing reloaded', { host: cfg.host });
      return { status: 'deployed', changed: false };
    }
    const snapshotId = newSnapshotId(ctx.clock.now());
    let entries;
    try {
      entries = await placeFiles(session.fs, files, snapshotId);
    } catch (err) {
      return failed(`cannot place the files on ${cfg.host}: ${message(err)}; the previous files were left in place`, true);
    }
    if (cfg.reloadLine) {
      const problem = await runReload(session, cfg.reloadLine, timeoutMs);
      if (problem) {
        const left = await restoreFiles(session.fs, entries);
        const again = left.length ? 'not reloaded' : await runReload(session, cfg.reloadLine, timeoutMs);
        ctx.log.warn('ssh deploy: reload failed; previous files restored', { host: cfg.host, restored: !left.length });
        if (left.length) return failed(`${problem}; restoring the previous files also failed: ${left.join('; ')}`, false);
        return failed(`${problem}; the previous files were restored${again ? ` (reloading them: ${again})` : ' and reloaded'}`, true);
      }
    }
    const previous = await saveSnapshot(ctx, snapshotId, { host: cfg.host, port: cfg.port, entries });
    if (previous && previous.record.host === cfg.host && previous.record.port === cfg.port) await discardBackups(session.fs, previous.record.entries);
    ctx.log.info('ssh deploy: files placed', { host: cfg.host, files: files.length, snapshot_id: snapshotId });
    return { status: 'deployed', changed: true, snapshotId };
  } catch (err) {
    return failed(`ssh deploy to ${cfg.host} failed: ${message(err)}`, false);
  } finally {
    session.close();
  }
}

/** Opens a session for a read-only check, answering a reason instead of throwing. */
async function withSession<T>(ctx: PluginContext, run: (s: SshSession, cfg: SshTargetConfig) => Promise<T>): Promise<T | { reason: string }> {
  let cfg: SshTargetConfig;
  try {
    cfg = await readConfig(ctx);
  } catch (err) {
    return { reason: `invalid config: ${message(err)}` };
  }
  let session: SshSession;
  try {
    session = await SshSession.open(cfg, budget(ctx, cfg));
  } catch (err) {
    return { reason: message(err) };
  }
  try {
    return await run(session, cfg);
  } catch (err) {
    return { reason: message(err) };
  } finally {
    session.close();
  }
}

export default definePlugin({
  kind: 'target',
  deploy,

  /** Connects (host key, auth), and checks that each target directory exists and the reload command is there. */
  async validate(_request, ctx) {
    const r = await withSession(ctx, async (session, cfg) => {
      for (const path of [cfg.certPath, cfg.keyPath, ...(cfg.chainPath ? [cfg.chainPath] : [])]) {
        const dir = path.slice(0, path.lastIndexOf('/')) || '/';
        const st = await session.fs.stat(dir);
        if (!st?.isDirectory()) return { reason: `${dir} is not a directory on ${cfg.host}` };
      }
      if (cfg.reload && !(await session.fs.stat(cfg.reload[0]))?.isFile()) return { reason: `the reload command ${cfg.reload[0]} does not exist on ${cfg.host}` };
      return { ok: true as const };
    });
    return 'ok' in r ? { ok: true } : { ok: false, reason: r.reason };
  },

  /** Reads the certificate file back from the remote host and compares its SHA-256 fingerprint. */
  async verify(request, ctx) {
    const r = await withSession(ctx, async (session, cfg) => {
      if (!(await session.fs.stat(cfg.certPath))) return { status: 'failed' as const, reason: `${cfg.certPath} does not exist on ${cfg.host}` };
      const first = pemBlocks((await session.fs.read(cfg.certPath)).toString('utf8')).find((b) => b.label === 'CERTIFICATE');
      if (!first) return { status: 'failed' as const, reason: `${cfg.certPath} holds no certificate` };
      const observed = new crypto.X509Certificate(first.text).fingerprint256.replace(/:/g, '').toLowerCase();
      const expected = request.fingerprintSha256.replace(/:/g, '').toLowerCase();
      return observed === expected
        ? { status: 'success' as const, observedFingerprintSha256: observed }
        : { status: 'failed' as const, observedFingerprintSha256: observed, reason: `${cfg.certPath} on ${cfg.host} holds a different certificate` };
    });
    return 'status' in r ? r : { status: 'failed', reason: r.reason };
  },

  /** Puts the replaced files back (the hidden hard links a deploy kept) and reloads. */
  async rollback(request, ctx) {
    const record = await loadSnapshot(ctx, request.snapshotId);
    if (!record) return { ok: false, reason: `snapshot ${request.snapshotId} does not exist (only the latest deploy can be rolled back)` };
    const r = await withSession(ctx, async (session, cfg) => {
      if (record.host !== cfg.host || record.port !== cfg.port) return { reason: `the snapshot was taken on ${record.host}:${record.port}, not on ${cfg.host}:${cfg.port}` };
      const left = await restoreFiles(session.fs, record.entries);
      await dropSnapshot(ctx, request.snapshotId);
      if (left.length) return { reason: `could not restore every file: ${left.join('; ')}` };
      const problem = cfg.reloadLine ? await runReload(session, cfg.reloadLine, budget(ctx, cfg)) : null;
      return problem ? { reason: `files restored, but ${problem}` } : { ok: true as const };
    });
    return 'ok' in r ? { ok: true } : { ok: false, reason: r.reason };
  },
});
