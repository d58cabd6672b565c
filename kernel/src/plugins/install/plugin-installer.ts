import type { Knex } from 'knex';
import type { PluginCapabilities } from '@certctl/sdk';
import type { Principal } from '../../auth/principal.js';
import { appError } from '../../errors.js';
import type { KernelServices } from '../../kernel-services.js';
import { VERSION } from '../../version.js';
import type { PluginEntry } from '../catalog.js';
import { configProblem, openConfig } from '../instances/instance-config.js';
import { INSTANCE_TABLES } from '../instances/instance-tables.js';
import { capabilityItems, narrowGrant, newRequests, normalizeCapabilities, notRequested } from './capabilities.js';
import { INSTALLED_COLUMNS, installedStatus, storedCapabilities, type InstalledRow } from './installed-store.js';
import { commitStagedPackage, removeDir, removePackageDir, stagePackage, type CheckedEntry, type StagedPackage } from './package-files.js';


export interface InvalidInstance {
  resource: string;
  id: string;
  name: string;
  reason: string;
}

/**
 * Installs, grants, enables, disables, upgrades and removes third-party plugins.
 * Each change is one transaction on installed_plugins with its audit event; files
 * are prepared before it (staged and checked) and cleaned up after it; the catalog
 * is refreshed once it committed.
 */
export class PluginInstaller {
  constructor(private readonly k: KernelServices) {}

  private get knex(): Knex {
    return this.k.db.knex;
  }

  /** The catalog's entry for an installed plugin (its package checks as seen by this replica). */
  catalogEntry(id: string): PluginEntry | undefined {
    return this.k.plugins.list().find((e) => e.source === 'installed' && e.id === id);
  }

  view(row: InstalledRow) {
    const entry = this.catalogEntry(row.id);
    const { status, reason } = installedStatus(row, entry);
    return {
      id: row.id,
      kind: row.kind,
      name: entry?.name ?? row.package_name,
      package_name: row.package_name,
      version: row.version,
      status,
      status_reason: reason,
      runtime: 'isolate' as const,
      requested_capabilities: storedCapabilities(row.requested_capabilities),
      granted_capabilities: storedCapabilities(row.granted_capabilities),
      installed_by: row.installed_by,
      installed_at: row.installed_at,
      updated_at: row.updated_at,
    };
  }

  private stage(archive: Buffer | undefined): Promise<StagedPackage> {
    if (!archive?.length) throw appError('VALIDATION_FAILED', 'the request body must be the plugin package (.tgz made by npm pack)');
    return stagePackage(archive, { dataDir: this.k.config.dataDir, kernelVersion: VERSION, log: this.k.log });
  }

  /** The locked row of an installed plugin; 404, or 409 for a plugin that is not managed through the API. */
  private async lockRow(trx: Knex.Transaction, id: string): Promise<InstalledRow> {
    const row = (await trx('installed_plugins').where({ id }).first(INSTALLED_COLUMNS).forUpdate()) as InstalledRow | undefined;
    if (row) return row;
    const discovered = this.k.plugins.discoveredWithId(id);
    if (discovered) throw appError('INVALID_STATE', `plugin ${id} is a ${discovered.source} plugin from ${discovered.dir}; only plugins installed through the API are managed here`);
    throw appError('NOT_FOUND', `plugin ${id} is not installed`);
  }

  private audit(trx: Knex.Transaction, principal: Principal, action: string, id: string, details: Record<string, unknown>) {
    return this.k.audit.append({ category: 'lifecycle', actor: principal.actor, actor_type: principal.actorType, action, resource_type: 'plugin', resource_id: id, details }, trx);
  }

  private async update(trx: Knex.Transaction, id: string, changes: Record<string, unknown>): Promise<InstalledRow> {
    const [row] = (await trx('installed_plugins').where({ id }).update({ ...changes, updated_at: trx.fn.now() }).returning(INSTALLED_COLUMNS as unknown as string[])) as InstalledRow[];
    return row;
  }

  /** Refreshes the catalog after a commit; the change is durable either way, so a failure is only logged. */
  private async refreshCatalog(): Promise<void> {
    await this.k.plugins.refresh().catch((err: unknown) => this.k.log.warn({ err: (err as Error).message }, 'refreshing installed plugins after a change failed'));
  }

  async install(archive: Buffer | undefined, principal: Principal) {
    const staged = await this.stage(archive);
    const { entry } = staged;
    let rel: string | null = null;
    try {
      const discovered = this.k.plugins.discoveredWithId(entry.id);
      if (discovered) throw appError('CONFLICT', `plugin id "${entry.id}" belongs to the ${discovered.source} plugin in ${discovered.dir}; an installed plugin cannot take it`);
      rel = await commitStagedPackage(staged, this.k.config.dataDir);
      const requested = normalizeCapabilities(entry.capabilities);
      const row = await this.knex.transaction(async (trx) => {
        if (await trx('installed_plugins').where({ id: entry.id }).first('id')) {
          throw appError('CONFLICT', `plugin ${entry.id} is already installed; upgrade it with PUT /api/v1/plugins/${entry.id}`);
        }
        const [created] = (await trx('installed_plugins').insert({
          id: entry.id, package_name: staged.packageName, version: staged.version, kind: entry.kind, dir: rel,
          archive: staged.archive, archive_sha256: staged.sha256,
          requested_capabilities: JSON.stringify(requested), granted_capabilities: JSON.stringify({}),
          grant_pending: true, enabled: false, status_reason: null, installed_by: principal.actor,
        }).returning(INSTALLED_COLUMNS as unknown as string[])) as InstalledRow[];
        await this.audit(trx, principal, 'plugin_installed', entry.id, {
          package_name: staged.packageName, version: staged.version, kind: entry.kind, archive_sha256: staged.sha256, requested_capabilities: requested,
        });
        return created;
      });
      await this.refreshCatalog();
      return this.view(row);
    } catch (err) {
      await removeDir(staged.stagingDir);
      if (rel) await removePackageDir(this.k.config.dataDir, rel);
      throw err;
    }
  }

  /** Grants a subset of what the plugin asks for and enables it. Anything not asked for is refused. */
  async grant(id: string, capabilities: PluginCapabilities, principal: Principal) {
    const row = await this.knex.transaction(async (trx) => {
      const current = await this.lockRow(trx, id);
      const requested = storedCapabilities(current.requested_capabilities);
      const extra = notRequested(requested, capabilities);
      if (extra.length) {
        throw appError('VALIDATION_FAILED', `plugin ${id} does not ask for: ${extra.join(', ')}`, { details: extra.map((e) => ({ path: '/capabilities', message: `not requested: ${e}` })) });
      }
      const granted = normalizeCapabilities(capabilities);
      const updated = await this.update(trx, id, { granted_capabilities: JSON.stringify(granted), grant_pending: false, enabled: true, status_reason: null });
      await this.audit(trx, principal, 'plugin_granted', id, {
        version: current.version, granted_capabilities: granted, requested_capabilities: requested,
        withheld: capabilityItems(requested).filter((i) => !capabilityItems(granted).includes(i)),
      });
      return updated;
    });
    await this.refreshCatalog();
    return this.view(row);
  }

  async setEnabled(id: string, enabled: boolean, principal: Principal, reason?: string) {
    const row = await this.knex.transaction(async (trx) => {
      const current = await this.lockRow(trx, id);
      if (enabled && current.grant_pending) {
        throw appError('INVALID_STATE', `plugin ${id} waits for its capabilities to be granted: POST /api/v1/plugins/${id}/grant enables it`);
      }
      const statusReason = enabled ? null : (reason ?? `disabled by ${principal.actor}`);
      if (current.enabled === enabled && current.status_reason === statusReason) return current;
      const updated = await this.update(trx, id, { enabled, status_reason: statusReason });
      await this.audit(trx, principal, enabled ? 'plugin_enabled' : 'plugin_disabled', id, { version: current.version, ...(enabled ? {} : { reason: statusReason }) });
      return updated;
    });
    await this.refreshCatalog();
    return this.view(row);
  }

  /**
   * Replaces the package of an installed plugin with a new version of it. Grants
   * are kept where the new version still asks for them; a capability it newly asks
   * for leaves the plugin disabled until the operator grants again. Instances whose
   * stored config the new schema rejects are reported (and show as invalid).
   */
  async upgrade(id: string, archive: Buffer | undefined, principal: Principal) {
    const staged = await this.stage(archive);
    const { entry } = staged;
    let rel: string | null = null;
    let oldRel: string | null = null;
    try {
      if (entry.id !== id) throw appError('VALIDATION_FAILED', `the package is plugin "${entry.id}", not "${id}"`);
      rel = await commitStagedPackage(staged, this.k.config.dataDir);
      const result = await this.knex.transaction(async (trx) => {
        const current = await this.lockRow(trx, id);
        if (current.kind !== entry.kind) throw appError('VALIDATION_FAILED', `plugin ${id} is ${current.kind === 'issuer' ? 'an' : 'a'} ${current.kind} plugin; the new version cannot change its kind to ${entry.kind}`);
        oldRel = current.dir;
        const previouslyRequested = storedCapabilities(current.requested_capabilities);
        const requested = normalizeCapabilities(entry.capabilities);
        const asked = newRequests(previouslyRequested, requested);
        const granted = narrowGrant(storedCapabilities(current.granted_capabilities), requested);
        const grantPending = current.grant_pending || asked.length > 0;
        const invalid = await this.instancesRejectedBy(trx, entry);
        const updated = await this.update(trx, id, {
          package_name: staged.packageName, version: staged.version, dir: rel, archive: staged.archive, archive_sha256: staged.sha256,
          requested_capabilities: JSON.stringify(requested), granted_capabilities: JSON.stringify(granted),
          grant_pending: grantPending, enabled: current.enabled && !grantPending,
          status_reason: asked.length ? `version ${staged.version} asks for capabilities not granted before: ${asked.join(', ')}` : current.status_reason,
        });
        await this.audit(trx, principal, 'plugin_upgraded', id, {
          from_version: current.version, to_version: staged.version, archive_sha256: staged.sha256, requested_capabilities: requested,
          granted_capabilities: granted, new_capability_requests: asked, invalid_instances: invalid.map((i) => `${i.resource}:${i.id}`),
        });
        return { row: updated, invalid };
      });
      if (oldRel && oldRel !== rel) await removePackageDir(this.k.config.dataDir, oldRel);
      await this.refreshCatalog();
      return { ...this.view(result.row), invalid_instances: result.invalid };
    } catch (err) {
      await removeDir(staged.stagingDir);
      if (rel) await removePackageDir(this.k.config.dataDir, rel);
      throw err;
    }
  }

  /** Instances of the plugin whose stored config (secrets included) the new schema rejects. */
  private async instancesRejectedBy(trx: Knex.Transaction, entry: CheckedEntry): Promise<InvalidInstance[]> {
    const spec = entry.kind ? INSTANCE_TABLES[entry.kind] : undefined;
    if (!spec) return [];
    const rows = (await trx(spec.table).where({ type: entry.id }).select('id', 'name', 'config', 'encrypted_config').orderBy('id')) as { id: string; name: string; config: unknown; encrypted_config: string | null }[];
    const out: InvalidInstance[] = [];
    for (const r of rows) {
      let problem: string | null;
      try {
        problem = configProblem(entry.validateConfig, openConfig(this.k.cipher, r).full);
      } catch {
        problem = 'stored secrets cannot be decrypted with the configured key';
      }
      if (problem) out.push({ resource: spec.noun, id: r.id, name: r.name, reason: `stored config does not match the plugin's schema: ${problem}` });
    }
    return out;
  }

  /** Removes an installed plugin that no instance uses any more. */
  async remove(id: string, principal: Principal): Promise<void> {
    let rel: string | null = null;
    await this.knex.transaction(async (trx) => {
      const current = await this.lockRow(trx, id);
      const spec = INSTANCE_TABLES[current.kind];
      if (spec) {
        const users = (await trx(spec.table).where({ type: id }).select('id').orderBy('id').limit(11)) as { id: string }[];
        if (users.length) {
          const list = users.slice(0, 10).map((u) => u.id).join(', ') + (users.length > 10 ? ', ...' : '');
          throw appError('IN_USE', `plugin ${id} is used by ${spec.noun}s: ${list}; delete them first`);
        }
      }
      rel = current.dir;
      await trx('installed_plugins').where({ id }).delete();
      await this.audit(trx, principal, 'plugin_removed', id, { package_name: current.package_name, version: current.version });
    });
    if (rel) await removePackageDir(this.k.config.dataDir, rel);
    await this.refreshCatalog();
  }
}
