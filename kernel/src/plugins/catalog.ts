import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { PluginCapabilities, PluginKind, PluginManifest } from '@certctl/sdk';
import { compileConfigSchema, createConfigAjv, secretFieldPaths } from './config-schema.js';
import { discoverPluginPackages, type PluginCandidate, type PluginSource } from './discovery.js';
import { checkManifest } from './manifest-check.js';

export type PluginStatus = 'enabled' | 'disabled';

/** One discovered plugin package, usable or not. Immutable after boot. */
export interface PluginEntry {
  id: string;
  kind: PluginKind | null;
  name: string;
  version: string;
  description: string;
  source: PluginSource;
  dir: string;
  status: PluginStatus;
  /** Why the plugin is disabled; null when enabled. */
  reason: string | null;
  /** The checked manifest; null when the manifest itself was unusable. */
  manifest: PluginManifest | null;
  features: string[];
  capabilities: PluginCapabilities;
  /** The plugin's config schema, compiled once; null when disabled for a manifest problem. */
  validateConfig: ValidateFunction | null;
  /** Dot paths of the secret fields its config schema declares. */
  secretFields: string[];
}

/** Where the workspace's first-party plugins live: <repo>/plugins (from kernel/src|dist/plugins/). */
export const WORKSPACE_PLUGINS_DIR = fileURLToPath(new URL('../../../plugins/', import.meta.url));

export class PluginCatalog {
  private readonly byId = new Map<string, PluginEntry>();

  constructor(private readonly entries: readonly PluginEntry[]) {
    // An enabled entry owns its id; otherwise the first one seen is shown.
    for (const e of entries) {
      const current = this.byId.get(e.id);
      if (!current || (current.status !== 'enabled' && e.status === 'enabled')) this.byId.set(e.id, e);
    }
  }

  list(): readonly PluginEntry[] {
    return this.entries;
  }

  get(id: string): PluginEntry | undefined {
    return this.byId.get(id);
  }

  /** The enabled plugin of this kind with this id, or why there is none (for resource `type` checks). */
  resolve(id: string, kind: PluginKind): { plugin: PluginEntry & { manifest: PluginManifest; validateConfig: ValidateFunction } } | { reason: string } {
    const p = this.byId.get(id);
    if (!p) return { reason: `no plugin "${id}" is installed` };
    if (p.kind && p.kind !== kind) return { reason: `plugin "${id}" is ${article(p.kind)} ${p.kind} plugin, not ${article(kind)} ${kind} plugin` };
    if (p.status !== 'enabled' || !p.manifest || !p.validateConfig) return { reason: `plugin "${id}" is disabled: ${p.reason ?? 'unknown reason'}` };
    return { plugin: p as PluginEntry & { manifest: PluginManifest; validateConfig: ValidateFunction } };
  }
}

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');
const str = (v: unknown, max = 500): string => (typeof v === 'string' ? v.slice(0, max) : '');

function baseEntry(c: PluginCandidate): PluginEntry {
  const raw = (c.pkg?.certctl ?? {}) as Record<string, unknown>;
  const rawId = str(raw.id, 64);
  return {
    id: rawId || str(c.pkg?.name, 214) || path.basename(c.dir),
    kind: null,
    name: str(raw.displayName, 100) || str(c.pkg?.name, 214) || path.basename(c.dir),
    version: str(c.pkg?.version, 64),
    description: str(c.pkg?.description),
    source: c.source,
    dir: c.dir,
    status: 'disabled',
    reason: c.error ?? null,
    manifest: null,
    features: [],
    capabilities: {},
    validateConfig: null,
    secretFields: [],
  };
}

/**
 * Discovers plugin packages and checks each before any plugin code could run:
 * manifest against the SDK schema, engines.certctl against this kernel, and the
 * config schema compiled once (strict). A plugin that fails any check is kept
 * as `disabled` with its reason; none of this can stop the kernel from booting.
 */
export function loadPluginCatalog(opts: { workspacePluginsDir?: string | null; extraDirs: string[]; kernelVersion: string; log: Logger }): PluginCatalog {
  const configAjv = createConfigAjv(opts.log);
  const entries: PluginEntry[] = [];
  const claimed = new Map<string, PluginEntry>();
  const candidates = discoverPluginPackages({
    workspacePluginsDir: opts.workspacePluginsDir === undefined ? WORKSPACE_PLUGINS_DIR : opts.workspacePluginsDir,
    extraDirs: opts.extraDirs,
    log: opts.log,
  });
  for (const c of candidates) {
    const entry = baseEntry(c);
    entries.push(entry);
    if (c.error) continue;
    const check = checkManifest(c.pkg!.certctl, opts.kernelVersion);
    if (check.manifest) {
      const m = check.manifest;
      Object.assign(entry, { kind: m.kind, manifest: m, features: m.features ?? [], capabilities: m.capabilities ?? {} });
    }
    if (!check.ok) {
      entry.reason = check.reason;
      continue;
    }
    const m = check.manifest;
    const first = claimed.get(m.id);
    if (first) {
      entry.reason = `duplicate plugin id "${m.id}": already provided by ${first.name}${first.version ? ` ${first.version}` : ''}`;
      continue;
    }
    claimed.set(m.id, entry);
    const compiled = compileConfigSchema(configAjv, m.configSchema);
    if ('reason' in compiled) {
      entry.reason = compiled.reason;
      continue;
    }
    entry.validateConfig = compiled.validate;
    entry.secretFields = secretFieldPaths(m.configSchema);
    entry.status = 'enabled';
  }
  return new PluginCatalog(entries);
}
