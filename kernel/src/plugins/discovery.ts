import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { PluginPackageJson } from '@certctl/sdk';

/** Where a plugin came from: the repository, CERTCTL_PLUGIN_DIRS, or an install through the API. */
export type PluginSource = 'workspace' | 'extra' | 'installed';

/** A package directory that declares itself a plugin (its package.json has a `certctl` block). */
export interface PluginCandidate {
  dir: string;
  source: PluginSource;
  pkg: PluginPackageJson | null;
  /** Why package.json could not be read; set instead of `pkg`. */
  error?: string;
}

const subdirs = (dir: string): string[] => {
  try {
    return fs.readdirSync(dir, { withFileTypes: true })
      .filter((d) => (d.isDirectory() || d.isSymbolicLink()) && !d.name.startsWith('.') && d.name !== 'node_modules')
      .map((d) => path.join(dir, d.name))
      .filter((p) => fs.statSync(p, { throwIfNoEntry: false })?.isDirectory())
      .sort();
  } catch {
    return [];
  }
};

const hasPackageJson = (dir: string) => fs.existsSync(path.join(dir, 'package.json'));

/** Reads package.json; null when it is not a plugin package (no `certctl` block). */
function readCandidate(dir: string, source: PluginSource): PluginCandidate | null {
  let pkg: unknown;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  } catch (err) {
    return { dir, source, pkg: null, error: `package.json cannot be read: ${(err as Error).message}` };
  }
  if (!pkg || typeof pkg !== 'object' || Array.isArray(pkg)) return { dir, source, pkg: null, error: 'package.json is not a JSON object' };
  if (!Object.hasOwn(pkg, 'certctl')) return null;
  return { dir, source, pkg: pkg as PluginPackageJson };
}

/**
 * Finds plugin packages: the workspace's plugins/<category>/<package>, then each
 * extra directory, which may be a plugin package itself, a folder of packages, or
 * a folder of category folders. Sorted, so "first" is stable for duplicate ids.
 * Nothing found is loaded; only package.json files are read.
 */
export function discoverPluginPackages(opts: { workspacePluginsDir?: string | null; extraDirs: string[]; log: Logger }): PluginCandidate[] {
  const found: PluginCandidate[] = [];
  const seen = new Set<string>();
  const add = (dir: string, source: PluginSource) => {
    const real = fs.realpathSync(dir);
    if (seen.has(real)) return;
    seen.add(real);
    const c = readCandidate(dir, source);
    if (c) found.push(c);
  };

  if (opts.workspacePluginsDir && fs.existsSync(opts.workspacePluginsDir)) {
    for (const category of subdirs(opts.workspacePluginsDir)) {
      for (const pkgDir of subdirs(category)) if (hasPackageJson(pkgDir)) add(pkgDir, 'workspace');
    }
  }
  for (const extra of opts.extraDirs) {
    if (!fs.statSync(extra, { throwIfNoEntry: false })?.isDirectory()) {
      opts.log.warn({ dir: extra }, 'CERTCTL_PLUGIN_DIRS entry is not a directory; skipped');
      continue;
    }
    if (hasPackageJson(extra)) {
      add(extra, 'extra');
      continue;
    }
    for (const child of subdirs(extra)) {
      if (hasPackageJson(child)) add(child, 'extra');
      else for (const grandchild of subdirs(child)) if (hasPackageJson(grandchild)) add(grandchild, 'extra');
    }
  }
  return found;
}
