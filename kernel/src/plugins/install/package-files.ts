import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { PluginManifest } from '@certctl/sdk';
import type { ValidateFunction } from 'ajv';
import { appError } from '../../errors.js';
import type { PluginEntry } from '../catalog.js';
import { ArchiveError, readPluginArchive, writePackageFiles } from './archive.js';
import { checkInstalledPackage, packageJsonProblem } from './package-check.js';

/**
 * Where installed packages live: <data>/plugins/<id>/<version>-<random>/, with
 * uploads unpacked first into <data>/plugins/.staging/<random>/ and moved into
 * place only once they passed every check. Database rows store the path relative
 * to the data directory, so every replica unpacks to the same place in its own.
 */
export const PLUGINS_FOLDER = 'plugins';
const STAGING = '.staging';
const REL_DIR = /^plugins\/[a-z][a-z0-9-]*\/\d[0-9A-Za-z.+-]*-[0-9a-f]{8}$/;

export const stagingRoot = (dataDir: string) => path.join(dataDir, PLUGINS_FOLDER, STAGING);

/** The absolute folder of a stored relative `dir`, or null when the value is not one we write. */
export function packageDir(dataDir: string, rel: string): string | null {
  return REL_DIR.test(rel) ? path.join(dataDir, ...rel.split('/')) : null;
}

export type CheckedEntry = PluginEntry & { manifest: PluginManifest; validateConfig: ValidateFunction };

export interface StagedPackage {
  /** Absolute staging folder holding the unpacked package. */
  stagingDir: string;
  /** The package as the catalog would see it (checked on the staging copy). */
  entry: CheckedEntry;
  packageName: string;
  version: string;
  archive: Buffer;
  sha256: string;
}

export async function removeDir(dir: string): Promise<void> {
  await fs.promises.rm(dir, { recursive: true, force: true }).catch(() => {});
}

/** Removes an installed package's folder (given as stored, relative); a value we never write is left alone. */
export async function removePackageDir(dataDir: string, rel: string): Promise<void> {
  const dir = packageDir(dataDir, rel);
  if (dir) await removeDir(dir);
}

/** Unpacks an archive into a fresh folder under staging and returns that folder. */
async function unpackToStaging(dataDir: string, archive: Buffer): Promise<string> {
  const files = await readPluginArchive(archive);
  const manifestFile = files.get('package.json');
  if (!manifestFile) throw new ArchiveError('the archive has no package/package.json (pack the plugin with npm pack)');
  let pkg: unknown;
  try {
    pkg = JSON.parse(manifestFile.toString('utf8'));
  } catch {
    throw new ArchiveError('package/package.json is not valid JSON');
  }
  const problem = packageJsonProblem(pkg);
  if (problem) throw new ArchiveError(problem);
  const dir = path.join(stagingRoot(dataDir), crypto.randomBytes(8).toString('hex'));
  try {
    await writePackageFiles(files, dir);
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
  return dir;
}

/**
 * Takes an uploaded .tgz through every check before anything is recorded: safe
 * unpacking, package.json, the manifest (the catalog's own checks), the isolate
 * entry. Refusals are VALIDATION_FAILED errors naming the problem; the staging
 * folder is gone again when this throws.
 */
export async function stagePackage(archive: Buffer, opts: { dataDir: string; kernelVersion: string; log?: Logger }): Promise<StagedPackage> {
  let stagingDir: string;
  try {
    stagingDir = await unpackToStaging(opts.dataDir, archive);
  } catch (err) {
    if (err instanceof ArchiveError) throw appError('VALIDATION_FAILED', `plugin package refused: ${err.message}`);
    throw err;
  }
  const entry = checkInstalledPackage(stagingDir, { kernelVersion: opts.kernelVersion, log: opts.log });
  if (entry.status !== 'enabled' || !entry.manifest || !entry.validateConfig) {
    await removeDir(stagingDir);
    throw appError('VALIDATION_FAILED', `plugin package refused: ${entry.reason ?? 'unusable manifest'}`);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(stagingDir, 'package.json'), 'utf8')) as { name: string; version: string };
  return {
    stagingDir,
    entry: entry as CheckedEntry,
    packageName: pkg.name,
    version: pkg.version,
    archive,
    sha256: crypto.createHash('sha256').update(archive).digest('hex'),
  };
}

/** Moves a staged package to its final folder; returns the folder relative to the data directory. */
export async function commitStagedPackage(staged: StagedPackage, dataDir: string): Promise<string> {
  const rel = `${PLUGINS_FOLDER}/${staged.entry.id}/${staged.version}-${crypto.randomBytes(4).toString('hex')}`;
  const dest = packageDir(dataDir, rel)!;
  await fs.promises.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  await fs.promises.rename(staged.stagingDir, dest);
  return rel;
}

/**
 * Makes sure a stored package is unpacked at `rel` in this replica's data
 * directory, unpacking the archive from the database when it is missing (another
 * replica installed it, or the folder was lost). The archive's hash is checked first.
 */
export async function ensureUnpacked(dataDir: string, rel: string, loadArchive: () => Promise<{ archive: Buffer; sha256: string } | null>): Promise<string> {
  const dest = packageDir(dataDir, rel);
  if (!dest) throw new ArchiveError(`stored package folder "${rel}" is not a valid location`);
  if (fs.existsSync(path.join(dest, 'package.json'))) return dest;
  const stored = await loadArchive();
  if (!stored) throw new ArchiveError('the package archive is gone from the database');
  if (crypto.createHash('sha256').update(stored.archive).digest('hex') !== stored.sha256) throw new ArchiveError('the stored package archive does not match its recorded hash');
  const staging = await unpackToStaging(dataDir, stored.archive);
  await removeDir(dest);
  await fs.promises.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  try {
    await fs.promises.rename(staging, dest);
  } catch (err) {
    await removeDir(staging);
    if (!fs.existsSync(path.join(dest, 'package.json'))) throw err;
  }
  return dest;
}

/**
 * Removes package folders no row refers to any more (after an upgrade or removal
 * on another replica) and abandoned staging folders. Only folders older than
 * `graceMs` go, so an install in flight in this process is never swept away.
 */
export async function sweepPackageFolders(dataDir: string, referencedRel: Iterable<string>, graceMs: number): Promise<string[]> {
  const root = path.join(dataDir, PLUGINS_FOLDER);
  const keep = new Set([...referencedRel].map((rel) => packageDir(dataDir, rel)).filter(Boolean));
  const cutoff = Date.now() - graceMs;
  const old = (p: string) => (fs.statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? Infinity) < cutoff;
  const children = (p: string) => {
    try {
      return fs.readdirSync(p, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => path.join(p, d.name));
    } catch {
      return [];
    }
  };
  const removed: string[] = [];
  for (const idDir of children(root)) {
    const subs = children(idDir);
    for (const sub of subs) {
      if (keep.has(sub) || !old(sub)) continue;
      // In staging, and in a plugin folder that nothing references any more.
      await removeDir(sub);
      removed.push(sub);
    }
    if (path.basename(idDir) !== STAGING && children(idDir).length === 0 && old(idDir)) await fs.promises.rmdir(idDir).catch(() => {});
  }
  return removed;
}
