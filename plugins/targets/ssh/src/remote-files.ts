import type { RemoteFs } from './ssh-session.js';

/** A file to place on the remote host. */
export interface PlannedFile {
  path: string;
  content: Buffer;
  /** Mode for a file that does not exist yet; an existing file keeps its own mode and owner. */
  newMode: number;
}

/** How to undo one placed file: put the old inode back, or remove a file that was new. */
export interface SnapshotEntry {
  path: string;
  /** Hidden hard link to the replaced file (same directory, so the restore is one atomic rename); null when the file was new. */
  backup: string | null;
}

const split = (path: string) => {
  const i = path.lastIndexOf('/');
  return { dir: path.slice(0, i) || '/', base: path.slice(i + 1) };
};
/** A hidden sibling of `path`; same directory, so a rename between them is atomic. */
export const siblingPath = (path: string, tag: string) => {
  const { dir, base } = split(path);
  return `${dir === '/' ? '' : dir}/.${base}.certctl-${tag}`;
};

/** True when every planned file already holds exactly the planned bytes (so nothing needs to change). */
export async function alreadyInPlace(fs: RemoteFs, files: PlannedFile[]): Promise<boolean> {
  for (const f of files) {
    if (!(await fs.stat(f.path))) return false;
    if (!(await fs.read(f.path)).equals(f.content)) return false;
  }
  return true;
}

/**
 * Places every file atomically: each new content goes to a hidden temp file in
 * the target's directory with the old file's mode and owner (or `newMode`), the
 * old file is kept as a hard link (so the backup is the very inode, with its
 * owner, mode and bytes, and the key never travels), and the temp file is renamed
 * over the target. On any failure the files placed so far are restored and the
 * temp files removed, and the error is rethrown.
 */
export async function placeFiles(fs: RemoteFs, files: PlannedFile[], snapshotId: string): Promise<SnapshotEntry[]> {
  const temps: string[] = [];
  const done: SnapshotEntry[] = [];
  try {
    const staged: { file: PlannedFile; temp: string; existed: boolean }[] = [];
    for (const file of files) {
      const old = await fs.stat(file.path);
      if (old && !old.isFile()) throw new Error(`${file.path} exists and is not a regular file`);
      const temp = siblingPath(file.path, `new-${snapshotId}`);
      temps.push(temp);
      await fs.write(temp, file.content, old ? old.mode & 0o7777 : file.newMode);
      if (old) {
        const fresh = await fs.stat(temp);
        if (fresh && (fresh.uid !== old.uid || fresh.gid !== old.gid)) {
          try {
            await fs.chown(temp, old.uid, old.gid);
          } catch (err) {
            throw new Error(`cannot keep the owner ${old.uid}:${old.gid} of ${file.path} (${(err as Error).message}); connect as that user or as root`);
          }
        }
      }
      staged.push({ file, temp, existed: old !== null });
    }
    for (const { file, temp, existed } of staged) {
      let backup: string | null = null;
      if (existed) {
        backup = siblingPath(file.path, `bak-${snapshotId}`);
        await fs.unlink(backup);
        await fs.hardlink(file.path, backup);
      }
      await fs.replace(temp, file.path);
      done.push({ path: file.path, backup });
    }
    return done;
  } catch (err) {
    await restoreFiles(fs, done);
    for (const t of temps) await fs.unlink(t).catch(() => {});
    throw err;
  }
}

/** Puts the snapshot back (last placed first); returns what could not be restored. */
export async function restoreFiles(fs: RemoteFs, entries: SnapshotEntry[]): Promise<string[]> {
  const problems: string[] = [];
  for (const e of [...entries].reverse()) {
    try {
      if (e.backup) await fs.replace(e.backup, e.path);
      else await fs.unlink(e.path);
    } catch (err) {
      problems.push(`${e.path}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** Removes a snapshot's backups once it is no longer needed. */
export async function discardBackups(fs: RemoteFs, entries: SnapshotEntry[]): Promise<void> {
  for (const e of entries) if (e.backup) await fs.unlink(e.backup).catch(() => {});
}
