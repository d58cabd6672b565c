import fs from 'node:fs';
import path from 'node:path';
import type { PluginRuntime } from '@certctl/sdk';
import type { PluginEntry } from '../catalog.js';

/**
 * The absolute, real path of a plugin's entry module for a runtime, or why there
 * is none. The manifest's entry must stay inside the plugin's directory after
 * symlinks are resolved, so a package cannot point the host at other files.
 */
export function pluginEntryFile(entry: PluginEntry, runtime: PluginRuntime): { file: string } | { reason: string } {
  const rel = entry.manifest?.entry?.[runtime];
  if (!rel) return { reason: `the manifest has no ${runtime} entry` };
  if (path.isAbsolute(rel)) return { reason: `the ${runtime} entry must be a path inside the plugin directory` };
  let root: string;
  let file: string;
  try {
    root = fs.realpathSync(entry.dir);
    file = fs.realpathSync(path.resolve(root, rel));
  } catch {
    return { reason: `the ${runtime} entry ${rel} does not exist (is the plugin built?)` };
  }
  const inside = path.relative(root, file);
  if (!inside || inside === '..' || inside.startsWith(`..${path.sep}`) || path.isAbsolute(inside)) return { reason: `the ${runtime} entry ${rel} resolves outside the plugin directory` };
  if (!fs.statSync(file).isFile()) return { reason: `the ${runtime} entry ${rel} is not a file` };
  return { file };
}
