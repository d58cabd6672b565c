import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { PluginManifest, PluginPackageJson } from '@certctl/sdk';
import { checkPluginCandidate, type PluginEntry } from '../catalog.js';
import { createConfigAjv } from '../config-schema.js';

/** An isolate entry is one bundled script; anything bigger than this is not what we expect. */
export const MAX_ISOLATE_ENTRY_BYTES = 8 * 1024 * 1024;

// npm's rules for package names, and a plain semver version.
const PACKAGE_NAME = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;
const VERSION = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/** Why package.json's own fields are unusable for an install, or null. */
export function packageJsonProblem(pkg: unknown): string | null {
  if (!pkg || typeof pkg !== 'object' || Array.isArray(pkg)) return 'package.json is not a JSON object';
  const p = pkg as PluginPackageJson;
  if (typeof p.name !== 'string' || p.name.length > 214 || !PACKAGE_NAME.test(p.name)) return 'package.json needs a valid npm package "name"';
  if (typeof p.version !== 'string' || p.version.length > 64 || !VERSION.test(p.version)) return 'package.json needs a semver "version" (like 1.2.3)';
  if (!Object.hasOwn(p, 'certctl')) return 'package.json has no "certctl" block: this package is not a certctl plugin';
  return null;
}

/**
 * Third-party plugins only ever run in an isolate, from one bundled script: the
 * manifest must offer the `isolate` runtime, and its entry must be a plain file
 * inside the package (no link, no folder), of a sane size.
 */
function isolateEntryProblem(dir: string, m: PluginManifest): string | null {
  if (!m.runtimes.includes('isolate') || !m.entry.isolate) {
    return 'installed plugins run only in the isolate runtime: the manifest needs "isolate" in runtimes and an entry.isolate script (bundle it into one file, e.g. with esbuild)';
  }
  const file = path.resolve(dir, m.entry.isolate);
  if (!file.startsWith(path.resolve(dir) + path.sep)) return `entry.isolate "${m.entry.isolate}" leaves the package`;
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!st) return `entry.isolate "${m.entry.isolate}" is not in the package (was it built before npm pack?)`;
  if (!st.isFile()) return `entry.isolate "${m.entry.isolate}" is not a plain file`;
  if (st.size > MAX_ISOLATE_ENTRY_BYTES) return `entry.isolate "${m.entry.isolate}" is larger than ${MAX_ISOLATE_ENTRY_BYTES} bytes`;
  return null;
}

/**
 * The catalog's checks (manifest schema, engine range, config schema) plus the
 * isolate-entry rule, for an unpacked installed package. The same function runs
 * at upload time on the staging copy and on every catalog refresh, so a kernel
 * upgrade that no longer satisfies a plugin's engine range disables it. Each check
 * gets its own ajv: two versions of one plugin may carry the same schema `$id`.
 */
export function checkInstalledPackage(dir: string, opts: { kernelVersion: string; log?: Logger }): PluginEntry {
  let pkg: PluginPackageJson | null = null;
  let error: string | undefined;
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as unknown;
    error = packageJsonProblem(parsed) ?? undefined;
    if (!error) pkg = parsed as PluginPackageJson;
  } catch (err) {
    error = `package.json cannot be read: ${(err as Error).message}`;
  }
  return checkPluginCandidate(
    { dir, source: 'installed', pkg, ...(error ? { error } : {}) },
    { ajv: createConfigAjv(opts.log), kernelVersion: opts.kernelVersion, extraCheck: (m) => isolateEntryProblem(dir, m) },
  );
}
