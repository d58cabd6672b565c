import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { PluginCapabilities, PluginKind } from '@certctl/sdk';
import type { PluginCatalog, PluginEntry, PluginInstallation } from '../catalog.js';
import { normalizeCapabilities } from './capabilities.js';
import { checkInstalledPackage } from './package-check.js';
import { ensureUnpacked, sweepPackageFolders } from './package-files.js';

/** A row of installed_plugins without the archive (which is read only when a replica must unpack it). */
export interface InstalledRow {
  id: string;
  package_name: string;
  version: string;
  kind: PluginKind;
  dir: string;
  archive_sha256: string;
  requested_capabilities: unknown;
  granted_capabilities: unknown;
  grant_pending: boolean;
  enabled: boolean;
  status_reason: string | null;
  installed_by: string;
  installed_at: Date;
  updated_at: Date;
}

export const INSTALLED_COLUMNS = [
  'id', 'package_name', 'version', 'kind', 'dir', 'archive_sha256', 'requested_capabilities', 'granted_capabilities',
  'grant_pending', 'enabled', 'status_reason', 'installed_by', 'installed_at', 'updated_at',
] as const;

/** jsonb arrives parsed from pg and as text from some paths; either way, canonical capabilities. */
export function storedCapabilities(value: unknown): PluginCapabilities {
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return {};
    }
  }
  return v && typeof v === 'object' && !Array.isArray(v) ? normalizeCapabilities(v as PluginCapabilities) : {};
}

export type InstalledStatus = 'pending_grant' | 'enabled' | 'disabled' | 'invalid';

/** How an installed plugin stands, from its row and (when enabled) whether the package still passes the checks here. */
export function installedStatus(row: InstalledRow, entry: PluginEntry | undefined): { status: InstalledStatus; reason: string | null } {
  if (row.enabled) {
    if (!entry || entry.status !== 'enabled') return { status: 'invalid', reason: entry?.reason ?? 'the package is not loaded on this replica yet' };
    return { status: 'enabled', reason: null };
  }
  if (row.grant_pending) return { status: 'pending_grant', reason: row.status_reason ?? 'waiting for an operator to grant the capabilities it asks for' };
  return { status: 'disabled', reason: row.status_reason ?? 'disabled by an operator' };
}

function installationOf(row: InstalledRow): PluginInstallation {
  return {
    packageName: row.package_name,
    requested: storedCapabilities(row.requested_capabilities),
    granted: storedCapabilities(row.granted_capabilities),
    grantPending: row.grant_pending,
    enabled: row.enabled,
    installedBy: row.installed_by,
    installedAt: row.installed_at,
    updatedAt: row.updated_at,
  };
}

const PENDING_REASON = 'waiting for an operator to grant the capabilities it asks for (POST /api/v1/plugins/{id}/grant)';
const SWEEP_GRACE_MS = 10 * 60_000;

/**
 * Keeps the catalog's installed plugins in step with installed_plugins: after
 * each change made through this process (routes call catalog.refresh()) and on a
 * short interval, so a change made on another replica shows up here too. A
 * package folder missing on this replica is unpacked from the archive in the
 * database. Package checks are cached per folder; a row that did not change
 * keeps its catalog entry object, so catalog listeners fire only on real changes.
 */
export class InstalledPluginStore {
  private readonly checked = new Map<string, PluginEntry>();
  private readonly entries = new Map<string, { signature: string; entry: PluginEntry }>();
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly opts: {
    knex: Knex;
    dataDir: string;
    catalog: PluginCatalog;
    kernelVersion: string;
    log: Logger;
    /** How often to re-read installed_plugins (other replicas' changes). */
    refreshIntervalMs?: number;
  }) {}

  /** First load (before the kernel serves), then the periodic refresh. */
  async start(): Promise<void> {
    this.opts.catalog.setRefresher(() => this.refresh());
    await this.refresh();
    const every = this.opts.refreshIntervalMs ?? 10_000;
    this.timer = setInterval(() => {
      this.refresh().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'refreshing installed plugins failed'));
    }, every);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.opts.catalog.setRefresher(null);
  }

  /** Re-reads installed_plugins. A call made while a refresh runs waits for a fresh one (the running one may predate the change). */
  refresh(): Promise<void> {
    if (this.running) {
      this.queued ??= this.running.catch(() => {}).then(() => {
        this.queued = null;
        return this.refresh();
      });
      return this.queued;
    }
    this.running = this.reload().finally(() => { this.running = null; });
    return this.running;
  }

  private async reload(): Promise<void> {
    if (this.stopped) return;
    const rows = (await this.opts.knex('installed_plugins').select(INSTALLED_COLUMNS).orderBy('id')) as InstalledRow[];
    const next: PluginEntry[] = [];
    for (const row of rows) next.push(await this.entryFor(row));
    for (const id of [...this.entries.keys()]) if (!rows.some((r) => r.id === id)) this.entries.delete(id);
    const live = new Set(rows.map((r) => r.dir));
    for (const dir of [...this.checked.keys()]) if (!live.has(dir)) this.checked.delete(dir);
    if (this.stopped) return;
    this.opts.catalog.setInstalled(next);
    const swept = await sweepPackageFolders(this.opts.dataDir, rows.map((r) => r.dir), SWEEP_GRACE_MS).catch(() => []);
    if (swept.length) this.opts.log.info({ folders: swept }, 'removed unused plugin package folders');
  }

  private async entryFor(row: InstalledRow): Promise<PluginEntry> {
    const signature = JSON.stringify([row.dir, row.archive_sha256, row.enabled, row.grant_pending, row.status_reason, row.requested_capabilities, row.granted_capabilities, row.updated_at]);
    const cached = this.entries.get(row.id);
    let checked = this.checked.get(row.dir);
    let dir: string | null = null;
    try {
      dir = await ensureUnpacked(this.opts.dataDir, row.dir, async () => {
        const stored = (await this.opts.knex('installed_plugins').where({ id: row.id }).first('archive', 'archive_sha256')) as { archive: Uint8Array; archive_sha256: string } | undefined;
        return stored ? { archive: Buffer.from(stored.archive), sha256: stored.archive_sha256 } : null;
      });
    } catch (err) {
      this.opts.log.warn({ plugin: row.id, err: (err as Error).message }, 'installed plugin package cannot be unpacked');
      this.checked.delete(row.dir);
      return this.remember(row, signature, this.unusable(row, `its package cannot be unpacked here: ${(err as Error).message}`));
    }
    if (cached?.signature === signature && checked) return cached.entry;
    if (!checked) {
      checked = checkInstalledPackage(dir, { kernelVersion: this.opts.kernelVersion, log: this.opts.log });
      this.checked.set(row.dir, checked);
      if (checked.status !== 'enabled') this.opts.log.warn({ plugin: row.id, reason: checked.reason }, 'installed plugin disabled');
    }
    return this.remember(row, signature, this.overlay(checked, row));
  }

  private remember(row: InstalledRow, signature: string, entry: PluginEntry): PluginEntry {
    this.entries.set(row.id, { signature, entry });
    return entry;
  }

  /** The package's checked entry with the operator's decisions applied. */
  private overlay(checked: PluginEntry, row: InstalledRow): PluginEntry {
    const granted = storedCapabilities(row.granted_capabilities);
    let { status, reason } = checked;
    if (status === 'enabled' && row.grant_pending) {
      status = 'disabled';
      reason = row.status_reason ?? PENDING_REASON;
    } else if (status === 'enabled' && !row.enabled) {
      status = 'disabled';
      reason = row.status_reason ?? 'disabled by an operator';
    }
    return {
      ...checked,
      status,
      reason,
      grants: granted,
      installation: installationOf(row),
    };
  }

  private unusable(row: InstalledRow, reason: string): PluginEntry {
    return {
      id: row.id, kind: row.kind, name: row.package_name, version: row.version, description: '', source: 'installed', dir: '',
      status: 'disabled', reason, manifest: null, features: [], capabilities: storedCapabilities(row.requested_capabilities), grants: {},
      runtime: null, validateConfig: null, secretFields: [], installation: installationOf(row),
    };
  }
}
