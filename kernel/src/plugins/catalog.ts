import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv, ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { PluginCapabilities, PluginKind, PluginManifest, PluginRuntime } from '@certctl/sdk';
import { compileConfigSchema, createConfigAjv, secretFieldPaths } from './config-schema.js';
import { discoverPluginPackages, type PluginCandidate, type PluginSource } from './discovery.js';
import { checkManifest } from './manifest-check.js';
import { claimMounts, mountClash } from '../protocols/mounts.js';

export type PluginStatus = 'enabled' | 'disabled';

/** How an installed (third-party) plugin stands: what it asked for and what the operator decided. */
export interface PluginInstallation {
  packageName: string;
  requested: PluginCapabilities;
  granted: PluginCapabilities;
  /** True until the operator has granted (some of) what the current version asks for. */
  grantPending: boolean;
  enabled: boolean;
  installedBy: string;
  installedAt: Date;
  updatedAt: Date;
}

/** One plugin package, usable or not. Entries are replaced, never mutated, once in a catalog. */
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
  /** What the manifest asks for. */
  capabilities: PluginCapabilities;
  /**
   * What the host may let the plugin use. First-party plugins (the workspace and the
   * operator's CERTCTL_PLUGIN_DIRS) get what they ask for; an installed plugin gets
   * only what the operator granted.
   */
  grants: PluginCapabilities;
  /** The runtime the host runs it in: installed plugins always in an isolate. Null when unusable. */
  runtime: PluginRuntime | null;
  /** The plugin's config schema, compiled once; null when disabled for a manifest problem. */
  validateConfig: ValidateFunction | null;
  /** Dot paths of the secret fields its config schema declares. */
  secretFields: string[];
  /** Set for plugins installed through the API. */
  installation: PluginInstallation | null;
}

/** Where the workspace's first-party plugins live: <repo>/plugins (from kernel/src|dist/plugins/). */
export const WORKSPACE_PLUGINS_DIR = fileURLToPath(new URL('../../../plugins/', import.meta.url));

export type CatalogListener = (catalog: PluginCatalog) => void;

/**
 * The plugins this kernel knows: the ones discovered at boot (fixed for the life of
 * the process) and the installed ones, which the installed-plugin store replaces
 * whenever installed_plugins changes (here or on another replica).
 */
export class PluginCatalog {
  private installed: readonly PluginEntry[] = [];
  private entries: readonly PluginEntry[] = [];
  private byId = new Map<string, PluginEntry>();
  private readonly listeners = new Set<CatalogListener>();
  private refresher: (() => Promise<void>) | null = null;

  constructor(private readonly discovered: readonly PluginEntry[]) {
    this.rebuild();
  }

  private rebuild(): void {
    this.entries = [...this.discovered, ...this.installed];
    const byId = new Map<string, PluginEntry>();
    // An enabled entry owns its id; otherwise the first one seen is shown.
    for (const e of this.entries) {
      const current = byId.get(e.id);
      if (!current || (current.status !== 'enabled' && e.status === 'enabled')) byId.set(e.id, e);
    }
    this.byId = byId;
  }

  list(): readonly PluginEntry[] {
    return this.entries;
  }

  get(id: string): PluginEntry | undefined {
    return this.byId.get(id);
  }

  /** A plugin found in the workspace or CERTCTL_PLUGIN_DIRS with this id (installs may not take it). */
  discoveredWithId(id: string): PluginEntry | undefined {
    return this.discovered.find((e) => e.id === id);
  }

  /**
   * Replaces the installed plugins. One whose id a discovered plugin holds is kept
   * but disabled: an install never shadows first-party code. Listeners run only
   * when something changed.
   */
  setInstalled(entries: readonly PluginEntry[]): void {
    // Protocol mounts: discovered plugins hold theirs first, then installed ones in order.
    const mounts = new Map<string, { id: string }>();
    for (const d of this.discovered) if (d.status === 'enabled' && d.manifest) claimMounts(d.manifest, mounts);
    const next = entries.map((e) => {
      const holder = this.discovered.find((d) => d.id === e.id && d.status === 'enabled');
      if (e.status !== 'enabled') return e;
      if (holder) return { ...e, status: 'disabled' as const, reason: `id "${e.id}" belongs to the ${holder.source} plugin in ${holder.dir}` };
      const clash = e.manifest ? mountClash(e.manifest, mounts) : null;
      if (clash) return { ...e, status: 'disabled' as const, reason: clash };
      if (e.manifest) claimMounts(e.manifest, mounts);
      return e;
    });
    const same = next.length === this.installed.length && next.every((e, i) => e === this.installed[i]);
    if (same) return;
    this.installed = next;
    this.rebuild();
    for (const fn of this.listeners) {
      try {
        fn(this);
      } catch {
        // A listener's fault is its own; the catalog stays consistent.
      }
    }
  }

  /** Called after the installed plugins changed; returns an unsubscribe function. */
  onChange(fn: CatalogListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Installs the function that re-reads installed plugins (the installed-plugin store). */
  setRefresher(fn: (() => Promise<void>) | null): void {
    this.refresher = fn;
  }

  /** Re-reads installed plugins now (after a change through the API). */
  async refresh(): Promise<void> {
    await this.refresher?.();
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
    grants: {},
    runtime: null,
    validateConfig: null,
    secretFields: [],
    installation: null,
  };
}

/**
 * Checks one plugin package before any of its code could run: the manifest against
 * the SDK schema and this kernel's version, then `extraCheck` (duplicate ids at boot,
 * the isolate entry for installed plugins), then the config schema, compiled once
 * (strict). The entry comes back enabled, or disabled with the first reason found.
 */
export function checkPluginCandidate(
  c: PluginCandidate,
  opts: { ajv: Ajv; kernelVersion: string; extraCheck?: (manifest: PluginManifest, entry: PluginEntry) => string | null },
): PluginEntry {
  const entry = baseEntry(c);
  if (c.error) return entry;
  const check = checkManifest(c.pkg!.certctl, opts.kernelVersion);
  if (check.manifest) {
    const m = check.manifest;
    Object.assign(entry, { kind: m.kind, manifest: m, features: m.features ?? [], capabilities: m.capabilities ?? {} });
  }
  if (!check.ok) {
    entry.reason = check.reason;
    return entry;
  }
  const m = check.manifest;
  const problem = opts.extraCheck?.(m, entry) ?? null;
  if (problem) {
    entry.reason = problem;
    return entry;
  }
  const compiled = compileConfigSchema(opts.ajv, m.configSchema, m.capabilities);
  if ('reason' in compiled) {
    entry.reason = compiled.reason;
    return entry;
  }
  entry.validateConfig = compiled.validate;
  entry.secretFields = secretFieldPaths(m.configSchema);
  entry.runtime = c.source === 'installed' ? 'isolate' : m.runtimes.includes('worker') ? 'worker' : 'isolate';
  entry.grants = c.source === 'installed' ? {} : entry.capabilities;
  entry.status = 'enabled';
  return entry;
}

/**
 * Discovers plugin packages and checks each (see checkPluginCandidate). A plugin
 * that fails any check is kept as `disabled` with its reason; none of this can stop
 * the kernel from booting. Installed plugins are added later by the installed-plugin store.
 */
export function loadPluginCatalog(opts: { workspacePluginsDir?: string | null; extraDirs: string[]; kernelVersion: string; log: Logger }): PluginCatalog {
  const ajv = createConfigAjv(opts.log);
  const claimed = new Map<string, PluginEntry>();
  const mounts = new Map<string, { id: string }>();
  const candidates = discoverPluginPackages({
    workspacePluginsDir: opts.workspacePluginsDir === undefined ? WORKSPACE_PLUGINS_DIR : opts.workspacePluginsDir,
    extraDirs: opts.extraDirs,
    log: opts.log,
  });
  const entries = candidates.map((c) => checkPluginCandidate(c, {
    ajv,
    kernelVersion: opts.kernelVersion,
    extraCheck: (m, entry) => {
      const first = claimed.get(m.id);
      if (first) return `duplicate plugin id "${m.id}": already provided by ${first.name}${first.version ? ` ${first.version}` : ''}`;
      const clash = mountClash(m, mounts);
      if (clash) return clash;
      claimed.set(m.id, entry);
      claimMounts(m, mounts);
      return null;
    },
  }));
  return new PluginCatalog(entries);
}
