import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';

/** Bounds on an uploaded plugin package. Real plugins are one bundled script plus package.json. */
export interface ArchiveLimits {
  /** The .tgz as uploaded. */
  maxArchiveBytes: number;
  /** All file contents together, unpacked (a gzip bomb stops here). */
  maxUnpackedBytes: number;
  maxEntries: number;
  /** Path segments below package/. */
  maxDepth: number;
}

export const ARCHIVE_LIMITS: ArchiveLimits = {
  maxArchiveBytes: 16 * 1024 * 1024,
  maxUnpackedBytes: 64 * 1024 * 1024,
  maxEntries: 2000,
  maxDepth: 32,
};

/** The archive is unusable; the message says why and is safe to show the uploader. */
export class ArchiveError extends Error {
  override name = 'ArchiveError';
}

const gunzip = promisify(zlib.gunzip) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;

// Only plain files and folders. Links (even harmless ones) and device, FIFO or
// unknown entries are refused outright rather than skipped: npm pack never makes them.
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const DIR_TYPE = 'Directory';
const TAR_BLOCK = 512;

/** The package-relative path of an entry, or why it is refused. npm pack puts everything under package/. */
function packagePath(raw: string): { rel: string[] } | { problem: string } {
  if (/[\0-\x1f\\]/.test(raw)) return { problem: 'has control characters or backslashes in its name' };
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) return { problem: 'has an absolute path' };
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { problem: 'has a ".." path segment' };
  if (parts[0] !== 'package') return { problem: 'is outside the package/ folder (pack the plugin with npm pack)' };
  return { rel: parts.slice(1) };
}

/**
 * Reads an npm-packed plugin (.tgz) into memory without touching the disk, refusing
 * anything unsafe: a non-gzip body, more than `maxUnpackedBytes` once unpacked,
 * more than `maxEntries` entries, absolute or `..` paths, entries outside package/,
 * links, device files, duplicate names. Returns file contents by package-relative path.
 */
export async function readPluginArchive(tgz: Buffer, limits: ArchiveLimits = ARCHIVE_LIMITS): Promise<Map<string, Buffer>> {
  if (tgz.length > limits.maxArchiveBytes) throw new ArchiveError(`the archive is larger than ${limits.maxArchiveBytes} bytes`);
  if (tgz.length < 18 || tgz[0] !== 0x1f || tgz[1] !== 0x8b) throw new ArchiveError('the upload is not a gzip-compressed tar archive (.tgz)');
  // Headers and padding count too: allow them on top of the file bytes.
  const maxTarBytes = limits.maxUnpackedBytes + (limits.maxEntries + 4) * TAR_BLOCK * 3;
  let tar: Buffer;
  try {
    tar = await gunzip(tgz, { maxOutputLength: maxTarBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ArchiveError(`the archive unpacks to more than ${limits.maxUnpackedBytes} bytes`);
    }
    throw new ArchiveError(`the archive cannot be decompressed: ${(err as Error).message}`);
  }

  const files = new Map<string, Buffer>();
  const dirs = new Set<string>();
  let problem: string | null = null;
  let entries = 0;
  let total = 0;

  /** Why an entry is refused, or its package-relative path when it is acceptable. */
  const entryProblem = (entry: ReadEntry): { why: string } | { rel: string } => {
    const where = `entry ${JSON.stringify(entry.path.slice(0, 200))}`;
    if (entries > limits.maxEntries) return { why: `the archive has more than ${limits.maxEntries} entries` };
    const p = packagePath(entry.path);
    if ('problem' in p) return { why: `${where} ${p.problem}` };
    if (p.rel.length > limits.maxDepth) return { why: `${where} is nested more than ${limits.maxDepth} folders deep` };
    const rel = p.rel.join('/');
    if (entry.type === DIR_TYPE) return { rel };
    if (!FILE_TYPES.has(entry.type)) return { why: `${where} is a ${entry.type}; only plain files and folders are allowed` };
    if (!rel) return { why: `${where} is a file where the package folder should be` };
    if (files.has(rel)) return { why: `${where} appears more than once` };
    if (total + entry.size > limits.maxUnpackedBytes) return { why: `the archive unpacks to more than ${limits.maxUnpackedBytes} bytes` };
    return { rel };
  };

  const onEntry = (entry: ReadEntry) => {
    entries += 1;
    const verdict = problem ? { why: problem } : entryProblem(entry);
    if ('why' in verdict) {
      problem ??= verdict.why;
      entry.resume();
      return;
    }
    if (entry.type === DIR_TYPE) {
      if (verdict.rel) dirs.add(verdict.rel);
      entry.resume();
      return;
    }
    total += entry.size;
    const chunks: Buffer[] = [];
    entry.on('data', (c: Buffer) => chunks.push(c));
    entry.on('end', () => files.set(verdict.rel, Buffer.concat(chunks)));
  };

  await new Promise<void>((resolve) => {
    const parser = new Parser({ strict: true, onReadEntry: onEntry });
    parser.on('error', (err: Error) => {
      problem ??= `the tar data is damaged: ${err.message}`;
      resolve();
    });
    parser.on('close', () => resolve());
    parser.end(tar);
  });
  if (problem) throw new ArchiveError(problem);
  if (entries === 0) throw new ArchiveError('the archive is empty');
  for (const rel of files.keys()) {
    // A file may not also be a folder of another entry (package/a and package/a/b).
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) if (files.has(parts.slice(0, i).join('/'))) throw new ArchiveError(`entry "package/${rel}" is inside a file`);
  }
  for (const d of dirs) if (files.has(d)) throw new ArchiveError(`entry "package/${d}" is both a file and a folder`);
  return files;
}

/**
 * Writes unpacked files into a new folder (which must not exist yet). Only
 * folders and plain files are created, each path is re-checked to stay inside
 * `destDir`, and nothing is overwritten, so no entry can reach outside it.
 */
export async function writePackageFiles(files: Map<string, Buffer>, destDir: string): Promise<void> {
  const root = path.resolve(destDir);
  await fs.mkdir(path.dirname(root), { recursive: true, mode: 0o700 });
  await fs.mkdir(root, { mode: 0o755 });
  for (const [rel, data] of files) {
    const target = path.resolve(root, rel);
    if (!target.startsWith(root + path.sep)) throw new ArchiveError(`entry "package/${rel}" leaves the package folder`);
    await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    await fs.writeFile(target, data, { flag: 'wx', mode: 0o644 });
  }
}
