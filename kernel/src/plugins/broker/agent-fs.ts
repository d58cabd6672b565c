import fs from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fsPathProblem, pathWithin } from '@certctl/sdk/policy';

/**
 * The agent-side `fs` capability: a target plugin reads and writes only files
 * at or below the absolute paths the operator granted. Checks run on real paths
 * (symlinks resolved), so neither `..` nor a symlink leads out of a granted
 * path. The kernel never grants fs; these functions are for the agent's broker.
 */

export class FsRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FsRefused';
  }
}

export const FS_READ_MAX_BYTES = 1024 * 1024;
export const FS_WRITE_MAX_BYTES = 1024 * 1024;

async function realRoots(declared: readonly string[]): Promise<string[]> {
  const roots: string[] = [];
  for (const d of declared) {
    if (typeof d !== 'string' || !path.isAbsolute(d)) continue;
    try {
      roots.push(await fs.realpath(d));
    } catch {
      // A granted file that does not exist yet (a first deploy) is granted where it
      // will be: its directory's real path plus its name. A missing directory grants nothing.
      try {
        roots.push(path.join(await fs.realpath(path.dirname(d)), path.basename(d)));
      } catch {
        // Nothing to grant.
      }
    }
  }
  return roots;
}

/** The requested path, absolute and normalised, when its shape is acceptable (@certctl/sdk/policy's rule, as in the SDK's test host). */
function checkShape(requested: unknown): string {
  const problem = fsPathProblem(requested);
  if (problem) throw new FsRefused(problem);
  return path.resolve(requested as string);
}

/**
 * The real path to operate on, after checking it lies within a granted path.
 * For a write the file may not exist yet: then its directory must exist and be
 * within a granted path. An existing file (or symlink) is judged by its real path.
 */
export async function resolveDeclaredPath(requested: unknown, declared: readonly string[], opts: { forWrite: boolean }): Promise<string> {
  const abs = checkShape(requested);
  const roots = await realRoots(declared);
  if (!roots.length) throw new FsRefused('the plugin was granted no file paths');
  let real: string;
  let missing = false;
  try {
    real = await fs.realpath(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FsRefused(`cannot access ${abs}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    let dir: string;
    try {
      dir = await fs.realpath(path.dirname(abs));
    } catch {
      throw new FsRefused(`the directory of ${abs} does not exist`);
    }
    real = path.join(dir, path.basename(abs));
    missing = true;
  }
  if (!roots.some((r) => pathWithin(r, real))) throw new FsRefused(`${abs} is outside the granted paths${real !== abs ? ` (it resolves to ${real})` : ''}`);
  // A missing file inside the grant is an ordinary outcome for a reader (ENOENT, as
  // the contract says); outside the grant it stays a refusal, so nothing is probed.
  if (missing && !opts.forWrite) throw Object.assign(new Error(`${abs} does not exist`), { code: 'ENOENT' });
  return real;
}

export async function readDeclaredFile(requested: unknown, declared: readonly string[], maxBytes = FS_READ_MAX_BYTES): Promise<string> {
  const real = await resolveDeclaredPath(requested, declared, { forWrite: false });
  // O_NOFOLLOW: if the checked path was swapped for a symlink since, the open fails.
  const handle = await fs.open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new FsRefused(`${real} is not a regular file`);
    if (stat.size > maxBytes) throw new FsRefused(`${real} is ${stat.size} bytes, over the ${maxBytes}-byte read limit`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Writes atomically: a new file beside the target (O_EXCL, so never through a
 * planted symlink), flushed, then renamed over the target's real path.
 */
export async function writeDeclaredFile(requested: unknown, data: string, declared: readonly string[], opts: { mode?: number; maxBytes?: number } = {}): Promise<string> {
  if (typeof data !== 'string') throw new FsRefused('data must be a string');
  const max = opts.maxBytes ?? FS_WRITE_MAX_BYTES;
  if (Buffer.byteLength(data, 'utf8') > max) throw new FsRefused(`data is over the ${max}-byte write limit`);
  const mode = opts.mode ?? 0o600;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new FsRefused('mode must be a permission number such as 0o640');
  const real = await resolveDeclaredPath(requested, declared, { forWrite: true });
  // An existing file keeps its owner, group and mode (a key readable by the web
  // server's group stays so); `mode` is for new files only.
  const existing = await fs.lstat(real).catch(() => null);
  if (existing && !existing.isFile()) throw new FsRefused(`${real} is not a regular file`);
  const tmp = path.join(path.dirname(real), `.${path.basename(real)}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await handle.writeFile(data, 'utf8');
    if (existing) {
      const mine = await handle.stat();
      if (mine.uid !== existing.uid || mine.gid !== existing.gid) {
        // Refused rather than silently handing the file to the agent's user.
        await handle.chown(existing.uid, existing.gid).catch((err: NodeJS.ErrnoException) => {
          throw Object.assign(new Error(`cannot keep the owner ${existing.uid}:${existing.gid} of ${real}: ${err.code ?? err.message}`), { code: err.code ?? 'EPERM' });
        });
      }
      await handle.chmod(existing.mode & 0o777);
    } else await handle.chmod(mode);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await fs.rename(tmp, real);
  return real;
}

/** Removes a granted file; a missing one is not an error. Directories are refused. */
export async function removeDeclaredFile(requested: unknown, declared: readonly string[]): Promise<void> {
  const real = await resolveDeclaredPath(requested, declared, { forWrite: true });
  const stat = await fs.lstat(real).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!stat) return;
  if (stat.isDirectory()) throw new FsRefused(`${real} is a directory; only files can be removed`);
  await fs.rm(real, { force: true });
}
