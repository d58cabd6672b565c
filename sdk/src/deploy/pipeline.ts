import type { DeployResult, PluginContext } from '../contract.js';
import { argvProblem, DEPLOY_LIMITS, pathProblem } from './argv.js';
import { sha256Hex } from './sha256.js';
import { loadSnapshot, pruneSnapshots, saveSnapshot, type CapturedFile } from './snapshots.js';

/**
 * The deploy pipeline every file-based target shares: snapshot, idempotency
 * check, atomic writes, validate, reload, and restore on any failure. The host
 * (the agent's broker) provides the atomic write and keeps an existing file's
 * owner and mode; this module decides what to write and when to undo it.
 */

export interface DeployFile {
  /** Absolute path on the agent's machine. */
  path: string;
  content: string;
  /** Mode for a file that does not exist yet; default 0o600 when it holds a private key, else 0o644. */
  mode?: number;
}

export interface DeployCommand {
  /** Absolute command path, then arguments; run without a shell. */
  argv: string[];
  timeoutMs?: number;
}

export interface DeployPlan {
  files: DeployFile[];
  /** Checks the new files before the server sees them (e.g. `nginx -t`); a failure restores the old files. */
  validate?: DeployCommand | null;
  /** Makes the server load the files (e.g. `nginx -s reload`); a failure restores the old files and reloads again. */
  reload?: DeployCommand | null;
}

export interface RestoreOptions {
  /** Validate the restored files before reloading. */
  validate?: DeployCommand | null;
  reload?: DeployCommand | null;
}

const DEFAULT_TIMEOUT_MS = { validate: 30_000, reload: 60_000 };
const OUTPUT_TAIL = 400;

const failed = (reason: string, rolledBack: boolean): DeployResult => ({ status: 'failed', reason, rolledBack });
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Whether a failed fs.read means "there is no such file" (as opposed to a refusal or an I/O error). */
export function isMissingFile(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === 'ENOENT' || (typeof e?.message === 'string' && /\bENOENT\b/.test(e.message));
}

export const defaultFileMode = (content: string) => (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(content) ? 0o600 : 0o644);

function planProblem(plan: DeployPlan): string | null {
  if (!plan || !Array.isArray(plan.files) || plan.files.length === 0) return 'the deploy plan has no files';
  if (plan.files.length > DEPLOY_LIMITS.maxFiles) return `the deploy plan has more than ${DEPLOY_LIMITS.maxFiles} files`;
  const seen = new Set<string>();
  for (const f of plan.files) {
    const p = pathProblem(f?.path, 'file path');
    if (p) return p;
    if (seen.has(f.path)) return `the deploy plan writes ${f.path} twice`;
    seen.add(f.path);
    if (typeof f.content !== 'string') return `the content for ${f.path} is not a string`;
    if (f.mode !== undefined && (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o777)) return `the mode for ${f.path} is not a permission number`;
  }
  for (const [what, cmd] of [['validate command', plan.validate], ['reload command', plan.reload]] as const) {
    if (cmd === undefined || cmd === null) continue;
    const p = argvProblem(cmd.argv, what);
    if (p) return p;
    if (cmd.timeoutMs !== undefined && !(Number.isInteger(cmd.timeoutMs) && cmd.timeoutMs > 0)) return `${what}: timeoutMs must be a positive integer`;
  }
  return null;
}

/** Runs one command; null when it exited 0, else a reason. Never throws. */
async function runStep(ctx: PluginContext, what: 'validate' | 'reload', cmd: DeployCommand): Promise<string | null> {
  const left = ctx.clock.deadline() - ctx.clock.now();
  const timeoutMs = Math.max(1, Math.min(cmd.timeoutMs ?? DEFAULT_TIMEOUT_MS[what], left > 2_000 ? left - 1_000 : left));
  const [command, ...args] = cmd.argv;
  try {
    const r = await ctx.exec.run(command, args, { timeoutMs });
    if (r.exitCode === 0) return null;
    const output = (r.stderr.trim() || r.stdout.trim()).slice(-OUTPUT_TAIL);
    return `${what} command ${command} exited with ${r.exitCode}${output ? `: ${output}` : ''}`;
  } catch (err) {
    return `${what} command ${command} could not run: ${message(err)}`;
  }
}

/** Puts captured contents back; a file that did not exist is removed. Returns the problems, empty when all went back. */
async function putBack(ctx: PluginContext, files: CapturedFile[]): Promise<string[]> {
  const problems: string[] = [];
  for (const f of files) {
    try {
      if (f.content === null) await ctx.fs.remove(f.path);
      else await ctx.fs.write(f.path, f.content);
    } catch (err) {
      problems.push(`${f.path}: ${message(err)}`);
    }
  }
  return problems;
}

/**
 * Deploys a set of files. Unchanged bytes everywhere -> `changed: false` and no
 * command runs. Otherwise the old contents go into a snapshot (returned as
 * `snapshotId` for a later rollback), the files are written, then validated and
 * the server reloaded; if anything fails the old files come back (and, after a
 * failed reload, the server is reloaded onto them) and the result is `failed`
 * with `rolledBack` telling whether the restore fully worked.
 */
export async function deployFiles(ctx: PluginContext, plan: DeployPlan): Promise<DeployResult> {
  const problem = planProblem(plan);
  if (problem) return failed(problem, false);

  const current: CapturedFile[] = [];
  for (const f of plan.files) {
    try {
      const content = await ctx.fs.read(f.path);
      current.push({ path: f.path, content, sha256: sha256Hex(content) });
    } catch (err) {
      if (!isMissingFile(err)) return failed(`cannot read ${f.path}: ${message(err)}`, false);
      current.push({ path: f.path, content: null, sha256: null });
    }
  }
  const changed = plan.files.map((f, i) => ({ file: f, before: current[i] })).filter(({ file, before }) => before.sha256 !== sha256Hex(file.content));
  if (!changed.length) {
    ctx.log.info('deploy: every file already has the new contents; nothing written, nothing reloaded', { files: plan.files.length });
    return { status: 'deployed', changed: false };
  }

  const before = changed.map((c) => c.before);
  let snapshotId: string;
  try {
    snapshotId = await saveSnapshot(ctx, before);
  } catch (err) {
    return failed(`could not save a snapshot of the current files, so nothing was changed: ${message(err)}`, false);
  }

  const undo = async (reason: string, reload: boolean): Promise<DeployResult> => {
    const problems = await putBack(ctx, before);
    let reloadProblem: string | null = null;
    if (reload && plan.reload && !problems.length) reloadProblem = await runStep(ctx, 'reload', plan.reload);
    const restored = !problems.length && !reloadProblem;
    ctx.log.warn('deploy failed; previous files restored', { reason, restored, snapshot_id: snapshotId });
    const tail = restored ? '; the previous files were restored' : `; restoring the previous files also failed: ${[...problems, reloadProblem].filter(Boolean).join('; ')}`;
    return failed(`${reason}${tail}`, restored);
  };

  for (const { file, before: old } of changed) {
    try {
      await ctx.fs.write(file.path, file.content, old.content === null ? { mode: file.mode ?? defaultFileMode(file.content) } : undefined);
    } catch (err) {
      return undo(`cannot write ${file.path}: ${message(err)}`, false);
    }
  }
  if (plan.validate) {
    const p = await runStep(ctx, 'validate', plan.validate);
    if (p) return undo(p, false);
  }
  if (plan.reload) {
    const p = await runStep(ctx, 'reload', plan.reload);
    if (p) return undo(p, true);
  }
  try {
    await pruneSnapshots(ctx);
  } catch (err) {
    ctx.log.warn('deploy: could not prune old snapshots', { error: message(err) });
  }
  ctx.log.info('deploy: files written and reloaded', { files: changed.length, snapshot_id: snapshotId });
  return { status: 'deployed', changed: true, snapshotId };
}

/**
 * Puts back the files a deploy replaced (removing those it created), then, when
 * given, validates them and reloads the server. For `rollback`, e.g. after the
 * agent found the endpoint serving the wrong certificate.
 */
export async function restoreSnapshot(ctx: PluginContext, snapshotId: string, options: RestoreOptions = {}): Promise<{ ok: boolean; reason?: string }> {
  for (const [what, cmd] of [['validate command', options.validate], ['reload command', options.reload]] as const) {
    const p = cmd ? argvProblem(cmd.argv, what) : null;
    if (p) return { ok: false, reason: p };
  }
  const snap = await loadSnapshot(ctx, snapshotId);
  if ('missing' in snap) return { ok: false, reason: snap.missing };
  const problems = await putBack(ctx, snap.files);
  if (problems.length) return { ok: false, reason: `could not restore every file: ${problems.join('; ')}` };
  if (options.validate) {
    const p = await runStep(ctx, 'validate', options.validate);
    if (p) return { ok: false, reason: `the restored files do not validate, so the server was not reloaded: ${p}` };
  }
  if (options.reload) {
    const p = await runStep(ctx, 'reload', options.reload);
    if (p) return { ok: false, reason: p };
  }
  ctx.log.info('rollback: previous files restored', { snapshot_id: snapshotId, files: snap.files.length });
  return { ok: true };
}
