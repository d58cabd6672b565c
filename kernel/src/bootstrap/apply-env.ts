import { isDeepStrictEqual } from 'node:util';
import type { Knex } from 'knex';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import { AppError, StartupError } from '../errors.js';
import type { KernelServices } from '../kernel-services.js';
import { openConfig, sealConfig, validateConfig } from '../plugins/instances/instance-config.js';
import { loopLockKey } from '../scheduler/scheduler.js';
import { envInstances, type EnvInstance } from './env-instances.js';

const TABLES = { notifier: { table: 'notifiers', noun: 'notifier' }, protocol: { table: 'protocol_endpoints', noun: 'protocol_endpoint' } } as const;
const DEFAULT_ISSUER_ID = 'iss-local';

type Row = { id: string; name: string; type: string; config: unknown; encrypted_config: string | null; enabled: boolean; managed_by: string | null };

/**
 * Start-up step: makes the env-managed notifiers and protocol endpoints match the
 * CERTCTL_* variables. A variable set creates or updates its row (fixed id,
 * managed_by 'env', secrets sealed like any instance's); a variable unset disables a
 * row made earlier. Unchanged rows are left alone, so a restart writes nothing and
 * audits nothing. Runs under an advisory lock, so kernels starting together do not race.
 * Problems are StartupErrors naming the variable; secret values never reach a message or the log.
 */
export async function applyEnvBootstrap(k: KernelServices): Promise<void> {
  const wanted = envInstances(k.config.bootstrap);
  await k.db.withAdvisoryLock(loopLockKey('env-bootstrap'), async () => {
    await ensureEnrolmentReferences(k);
    for (const inst of wanted) await applyOne(k, inst);
  });
}

async function applyOne(k: KernelServices, inst: EnvInstance): Promise<void> {
  const { table, noun } = TABLES[inst.kind];
  const knex = k.db.knex;
  if (inst.config === null) {
    await knex.transaction(async (trx) => {
      const row = (await trx(table).where({ id: inst.id, managed_by: 'env', enabled: true }).forUpdate().first('id')) as { id: string } | undefined;
      if (!row) return;
      await trx(table).where({ id: inst.id }).update({ enabled: false, status_reason: `${inst.variable} is not set`, updated_at: trx.fn.now() });
      await k.audit.append({ category: 'lifecycle', ...SYSTEM_ACTOR, action: `${noun}_updated`, resource_type: noun, resource_id: inst.id, details: { managed_by: 'env', enabled: false, variable: inst.variable } }, trx);
      k.log.info({ [noun]: inst.id, variable: inst.variable }, `env-managed ${noun} disabled`);
    });
    return;
  }
  const resolved = k.plugins.resolve(inst.type, inst.kind);
  if ('reason' in resolved) throw new StartupError(`${inst.variable}: the ${inst.type} ${inst.kind} plugin is not available (${resolved.reason})`);
  let config: Record<string, unknown>;
  try {
    config = validateConfig(resolved.plugin.validateConfig, inst.config);
  } catch (err) {
    // validateConfig's message names config paths, never values.
    throw new StartupError(`${inst.variable}: the ${inst.type} plugin refuses the configuration: ${err instanceof AppError ? err.message : String(err)}`);
  }
  const sealed = sealConfig(k.cipher, resolved.plugin.manifest.configSchema, config);
  await knex.transaction(async (trx) => {
    const existing = (await trx(table).where({ id: inst.id }).forUpdate().first()) as Row | undefined;
    if (existing && existing.managed_by !== 'env') throw new StartupError(`${inst.variable}: ${noun} ${inst.id} exists and was made through the API; delete it to let the environment manage it`);
    await assertFree(trx, inst, table, noun);
    if (!existing) {
      await trx(table).insert({ id: inst.id, name: inst.name, type: inst.type, config: sealed.config, encrypted_config: sealed.encrypted_config, enabled: true, managed_by: 'env' });
      await k.audit.append({
        category: 'lifecycle', ...SYSTEM_ACTOR, action: `${noun}_created`, resource_type: noun, resource_id: inst.id,
        details: { type: inst.type, managed_by: 'env', variable: inst.variable, secret_fields_set: sealed.secretFields },
      }, trx);
      k.log.info({ [noun]: inst.id, type: inst.type }, `env-managed ${noun} created`);
      return;
    }
    const same = existing.enabled && existing.name === inst.name && existing.type === inst.type && storedEquals(k, existing, config);
    if (same) return;
    await trx(table).where({ id: inst.id }).update({
      name: inst.name, type: inst.type, config: sealed.config, encrypted_config: sealed.encrypted_config, enabled: true, status_reason: null, updated_at: trx.fn.now(),
    });
    await k.audit.append({
      category: 'lifecycle', ...SYSTEM_ACTOR, action: `${noun}_updated`, resource_type: noun, resource_id: inst.id,
      details: { managed_by: 'env', variable: inst.variable, enabled: true, secret_fields_set: sealed.secretFields },
    }, trx);
    k.log.info({ [noun]: inst.id, type: inst.type }, `env-managed ${noun} updated`);
  });
}

/** Whether the stored config (secrets opened) equals the wanted one; an undecryptable row counts as changed. */
function storedEquals(k: KernelServices, row: Row, config: Record<string, unknown>): boolean {
  try {
    return isDeepStrictEqual(openConfig(k.cipher, row).full, config);
  } catch {
    return false;
  }
}

/** The name, and for protocols the plugin (one endpoint per protocol), must not be held by an operator's row. */
async function assertFree(trx: Knex.Transaction, inst: EnvInstance, table: string, noun: string): Promise<void> {
  const byName = (await trx(table).where({ name: inst.name }).whereNot({ id: inst.id }).first('id')) as { id: string } | undefined;
  if (byName) throw new StartupError(`${inst.variable}: ${noun} ${byName.id} already uses the name "${inst.name}"; rename it`);
  if (inst.kind !== 'protocol') return;
  const byType = (await trx(table).where({ type: inst.type }).whereNot({ id: inst.id }).first('id')) as { id: string } | undefined;
  if (byType) throw new StartupError(`${inst.variable}: protocol endpoint ${byType.id} (made through the API) already serves ${inst.type}; delete it, or unset ${inst.variable}`);
}

/**
 * The issuer and profile the enrolment variables name must exist. The default issuer,
 * iss-local, is the Local CA of the system certctl replaces: created here when missing
 * (source 'env'), so CERTCTL_EST_ENABLED=true alone gives a working endpoint.
 */
async function ensureEnrolmentReferences(k: KernelServices): Promise<void> {
  const { est, scep } = k.config.bootstrap;
  const uses = [
    ...(est.enabled ? [{ prefix: 'CERTCTL_EST', issuerId: est.issuerId, profileId: est.profileId }] : []),
    ...(scep.enabled ? [{ prefix: 'CERTCTL_SCEP', issuerId: scep.issuerId, profileId: scep.profileId }] : []),
  ];
  const knex = k.db.knex;
  for (const use of uses) {
    if (!(await knex('issuers').where({ id: use.issuerId }).first('id'))) {
      if (use.issuerId !== DEFAULT_ISSUER_ID) throw new StartupError(`${use.prefix}_ISSUER_ID: issuer ${use.issuerId} does not exist`);
      await createDefaultIssuer(k);
    }
    if (use.profileId && !(await knex('certificate_profiles').where({ id: use.profileId }).first('id'))) {
      throw new StartupError(`${use.prefix}_PROFILE_ID: profile ${use.profileId} does not exist`);
    }
  }
}

async function createDefaultIssuer(k: KernelServices): Promise<void> {
  const resolved = k.plugins.resolve('local-ca', 'issuer');
  if ('reason' in resolved) throw new StartupError(`CERTCTL_EST_ISSUER_ID/CERTCTL_SCEP_ISSUER_ID: issuer ${DEFAULT_ISSUER_ID} does not exist and the local-ca plugin is not available (${resolved.reason})`);
  const sealed = sealConfig(k.cipher, resolved.plugin.manifest.configSchema, validateConfig(resolved.plugin.validateConfig, {}));
  await k.db.knex.transaction(async (trx) => {
    const taken = await trx('issuers').where({ name: 'Local CA' }).first('id');
    await trx('issuers').insert({
      id: DEFAULT_ISSUER_ID, name: taken ? `Local CA (${DEFAULT_ISSUER_ID})` : 'Local CA', type: 'local-ca',
      config: sealed.config, encrypted_config: sealed.encrypted_config, enabled: true, source: 'env',
    });
    await k.audit.append({ category: 'lifecycle', ...SYSTEM_ACTOR, action: 'issuer_created', resource_type: 'issuer', resource_id: DEFAULT_ISSUER_ID, details: { type: 'local-ca', source: 'env' } }, trx);
  });
  k.log.info({ issuer: DEFAULT_ISSUER_ID }, 'created the default Local CA issuer for the env-managed enrolment endpoints');
}
