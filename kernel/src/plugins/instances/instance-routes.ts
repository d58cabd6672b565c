import type { Knex } from 'knex';
import type { PluginKind } from '@certctl/sdk';
import type { Permission } from '../../auth/permissions.js';
import type { Principal } from '../../auth/principal.js';
import { ID_PATTERN, newId, type IdKind } from '../../db/ids.js';
import { refuseEnvManagedChange } from '../../bootstrap/env-managed.js';
import { appError } from '../../errors.js';
import { runList, type FilterDef, type ListSpec } from '../../http/list-query.js';
import type { Ctx, JsonSchema, RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { TIME_FILTERS } from '../../resources/crud.js';
import { secretPaths, splitSecrets } from '../../secrets/config-cipher.js';
import { configProblem, mergePatch, openConfig, sealConfig, storedPlain, validateConfig } from './instance-config.js';

type Row = Record<string, unknown> & { id: string; name: string; type: string; config: unknown; encrypted_config: string | null; enabled: boolean; status_reason: string | null };

/**
 * A resource whose rows are configured instances of one plugin kind (issuers,
 * targets, notifiers): `type` names an enabled plugin of that kind, `config` is
 * validated by the plugin's schema, secret fields are sealed into
 * encrypted_config and never returned.
 */
export interface InstanceSpec {
  kind: PluginKind;
  idKind: IdKind;
  table: string;
  basePath: string;
  tag: string;
  /** Audit resource_type and messages, e.g. "issuer". */
  noun: string;
  permissions: { read: Permission; create: Permission; update: Permission; delete: Permission };
  /** Grants may name single rows of this resource (issuer-scoped grants). */
  scopedById?: 'issuer_id';
  /** Resource-specific writable columns (e.g. a target's agent_id). */
  extraProperties?: Record<string, JsonSchema>;
  /** Columns returned as they are stored, besides the common ones. */
  extraColumns?: string[];
  extraFilters?: Record<string, FilterDef>;
  /** Checks references of the resource-specific columns inside the write transaction. */
  checkReferences?: (data: Record<string, unknown>, trx: Knex.Transaction) => Promise<void>;
}

export type InstanceStatus = 'enabled' | 'disabled' | 'invalid';

const COMMON_FIELDS = ['id', 'name', 'type', 'enabled', 'status', 'status_reason', 'config', 'secret_fields_set', 'health', 'created_at', 'updated_at'];

export function instanceResponseSchema(spec: InstanceSpec): JsonSchema {
  return {
    type: 'object',
    properties: {
      id: { type: 'string' },
      name: { type: 'string' },
      type: { type: 'string', description: `Id of the ${spec.kind} plugin` },
      enabled: { type: 'boolean' },
      status: { type: 'string', enum: ['enabled', 'disabled', 'invalid'], description: 'invalid: the plugin is missing or disabled, or the stored config no longer matches its schema' },
      status_reason: { type: ['string', 'null'] },
      config: { type: 'object', description: 'Config without secret fields' },
      secret_fields_set: { type: 'array', items: { type: 'string' }, description: 'Paths of the secret fields that hold a value (never the values)' },
      health: {
        type: 'object',
        description: 'Outcome of plugin calls for this instance: the last failure (code and message from the plugin runner) and the last success (recorded at most once a minute)',
        properties: {
          last_error: { type: ['string', 'null'] },
          last_error_code: { type: ['string', 'null'] },
          last_error_at: { type: ['string', 'null'], format: 'date-time' },
          last_success_at: { type: ['string', 'null'], format: 'date-time' },
        },
      },
      managed_by: { type: 'string', enum: ['env'], description: 'Present when CERTCTL_* variables manage this row (docs/operations.md): name, config and enabled are then read-only' },
      ...Object.fromEntries((spec.extraColumns ?? []).map((c) => [c, {}])),
      created_at: { type: 'string', format: 'date-time' },
      updated_at: { type: 'string', format: 'date-time' },
    },
  };
}

export function instanceRoutes(k: KernelServices, spec: InstanceSpec): RouteDef[] {
  const knex = k.db.knex;
  const extraColumns = spec.extraColumns ?? [];
  const scopeOf = (id: string) => (spec.scopedById ? { [spec.scopedById]: id } : {});
  const actor = (p: Principal) => ({ actor: p.actor, actor_type: p.actorType });
  const mark = (ctx: Ctx, id: string) => { ctx.state.auditResource = { type: spec.noun, id }; };

  /** Rows the caller may not read do not exist for them (404), so ids do not leak. */
  const requireVisible = (p: Principal, id: string) => {
    if (!p.can(spec.permissions.read, scopeOf(id))) throw appError('NOT_FOUND', `${spec.noun} ${id} not found`);
  };
  const requireAllowed = (p: Principal, permission: Permission, id: string) => {
    requireVisible(p, id);
    p.require(permission, scopeOf(id));
  };

  const load = async (id: string, trx: Knex | Knex.Transaction = knex, lock = false): Promise<Row> => {
    const q = trx(spec.table).where({ id }).first();
    const row = (await (lock ? q.forUpdate() : q)) as Row | undefined;
    if (!row) throw appError('NOT_FOUND', `${spec.noun} ${id} not found`);
    return row;
  };

  /** Never throws: a row whose plugin or config went bad is reported, not fatal to a list. */
  const serialize = (row: Row): Record<string, unknown> => {
    let status: InstanceStatus = row.enabled ? 'enabled' : 'disabled';
    let reason: string | null = row.status_reason ?? null;
    const invalid = (why: string) => { status = 'invalid'; reason = why; };
    let opened: ReturnType<typeof openConfig> | null = null;
    try {
      opened = openConfig(k.cipher, row);
    } catch {
      invalid('stored secrets cannot be decrypted with the configured key');
    }
    let plain = opened?.plain ?? storedPlain(row.config);
    const known = k.plugins.get(row.type);
    // A field the plugin now declares secret is never echoed, even if an older schema stored it in clear.
    if (known?.kind === spec.kind && known.manifest) plain = splitSecrets(known.manifest.configSchema, plain).plain;
    if (opened) {
      const resolved = k.plugins.resolve(row.type, spec.kind);
      if ('reason' in resolved) invalid(resolved.reason);
      else {
        const problem = configProblem(resolved.plugin.validateConfig, opened.full);
        if (problem) invalid(`stored config does not match the plugin's schema: ${problem}`);
      }
    }
    const out: Record<string, unknown> = {
      id: row.id, name: row.name, type: row.type, enabled: row.enabled, status, status_reason: reason,
      config: plain, secret_fields_set: opened ? secretPaths(opened.secret) : [],
      health: { last_error: row.last_error ?? null, last_error_code: row.last_error_code ?? null, last_error_at: row.last_error_at ?? null, last_success_at: row.last_success_at ?? null },
    };
    for (const c of extraColumns) out[c] = row[c] ?? null;
    // Rows made from CERTCTL_* variables (notifiers, protocol endpoints) say so; the API cannot change their config.
    if (row.managed_by) out.managed_by = row.managed_by;
    out.created_at = row.created_at;
    out.updated_at = row.updated_at;
    return out;
  };

  const resolvePlugin = (type: string) => {
    const resolved = k.plugins.resolve(type, spec.kind);
    if ('reason' in resolved) throw appError('REFERENCE_NOT_FOUND', `type: ${resolved.reason}`);
    return resolved.plugin;
  };

  const assertNameFree = async (trx: Knex.Transaction, name: string, exceptId?: string) => {
    const q = trx(spec.table).where({ name }).first('id');
    if (exceptId) q.whereNot({ id: exceptId });
    if (await q) throw appError('CONFLICT', `a ${spec.noun} named "${name}" already exists`);
  };

  const extraProps = spec.extraProperties ?? {};
  const pickExtras = (body: Record<string, unknown>) => Object.fromEntries(Object.keys(extraProps).filter((c) => body[c] !== undefined).map((c) => [c, body[c]]));
  const common = {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    config: { type: 'object', description: `Config validated by the ${spec.kind} plugin's schema; secret fields are encrypted and never returned` },
    enabled: { type: 'boolean' },
  };

  const enabledFilter: FilterDef = {
    description: 'true or false',
    enum: ['true', 'false'],
    apply: (qb, values) => { if (values.length === 1) qb.where('enabled', values[0] === 'true'); },
  };
  const list: ListSpec = {
    sortable: { name: 'name', type: 'type', created_at: 'created_at', updated_at: 'updated_at' },
    defaultSort: 'name',
    filters: { type: { description: 'Plugin id', column: 'type' }, enabled: enabledFilter, ...(spec.extraFilters ?? {}) },
    timeFilters: TIME_FILTERS,
    fields: [...COMMON_FIELDS, ...extraColumns],
  };
  const responseSchema = instanceResponseSchema(spec);

  return [
    {
      method: 'GET', path: spec.basePath, access: spec.permissions.read, tag: spec.tag, summary: `List ${spec.tag}`, list,
      response: { schema: responseSchema },
      handler: (_ctx, { list: lq, principal }) => {
        // Only issuer grants can be narrowed to rows; for the others a non-global grant shows nothing.
        if (!spec.scopedById && !principal.hasGlobal(spec.permissions.read)) throw appError('FORBIDDEN', `Permission ${spec.permissions.read} is not granted globally`);
        const scope = spec.scopedById ? principal.scopeFilter(spec.permissions.read) : null;
        const base = () => (scope ? knex(spec.table).whereIn('id', scope.issuerIds) : knex(spec.table));
        return runList(base, list, lq!, serialize);
      },
    },
    {
      method: 'GET', path: `${spec.basePath}/:id`, access: spec.permissions.read, tag: spec.tag, summary: `Get a ${spec.noun}`,
      response: { schema: responseSchema },
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        requireVisible(principal, params.id);
        return serialize(await load(params.id));
      },
    },
    {
      method: 'POST', path: spec.basePath, access: spec.permissions.create, tag: spec.tag, summary: `Create a ${spec.noun}`,
      body: {
        type: 'object', additionalProperties: false, required: ['name', 'type'],
        properties: {
          id: { type: 'string', pattern: ID_PATTERN, description: 'Optional readable id; generated when omitted' },
          type: { type: 'string', minLength: 1, maxLength: 64, description: `Id of an enabled ${spec.kind} plugin` },
          ...common, ...extraProps,
        },
      },
      response: { status: 201, schema: responseSchema },
      handler: async (ctx, { body, principal }) => {
        // A grant scoped to one row cannot create rows.
        if (!principal.hasGlobal(spec.permissions.create)) throw appError('FORBIDDEN', `Permission ${spec.permissions.create} is not granted globally`);
        const plugin = resolvePlugin(body.type);
        const sealed = sealConfig(k.cipher, plugin.manifest.configSchema, validateConfig(plugin.validateConfig, body.config ?? {}));
        const id: string = body.id ?? newId(spec.idKind);
        const extras = pickExtras(body);
        const row = await knex.transaction(async (trx) => {
          if (await trx(spec.table).where({ id }).first('id')) throw appError('CONFLICT', `${spec.noun} ${id} already exists`);
          await assertNameFree(trx, body.name);
          await spec.checkReferences?.(extras, trx);
          const [created] = (await trx(spec.table).insert({
            id, name: body.name, type: body.type, config: sealed.config, encrypted_config: sealed.encrypted_config, enabled: body.enabled ?? true, ...extras,
          }).returning('*')) as Row[];
          await k.audit.append({
            category: 'lifecycle', ...actor(principal), action: `${spec.noun}_created`, resource_type: spec.noun, resource_id: id,
            details: { type: body.type, fields: Object.keys(body), secret_fields_set: sealed.secretFields },
          }, trx);
          return created;
        });
        mark(ctx, id);
        return serialize(row);
      },
    },
    {
      method: 'PUT', path: `${spec.basePath}/:id`, access: spec.permissions.update, tag: spec.tag,
      summary: `Update a ${spec.noun}: fields not given are kept; config is a JSON merge patch (omitted secrets are kept, null clears a field)`,
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { ...common, ...extraProps } },
      response: { schema: responseSchema },
      handler: async (ctx, { params, body, principal }) => {
        mark(ctx, params.id);
        requireAllowed(principal, spec.permissions.update, params.id);
        const row = await knex.transaction(async (trx) => {
          const existing = await load(params.id, trx, true);
          refuseEnvManagedChange(existing, body);
          const changes: Record<string, unknown> = pickExtras(body);
          let secretFields: string[] | undefined;
          if (body.name !== undefined) {
            await assertNameFree(trx, body.name, params.id);
            changes.name = body.name;
          }
          if (body.enabled !== undefined) changes.enabled = body.enabled;
          // A new config, or switching the instance on, needs a working plugin and a config it accepts.
          if (body.config !== undefined || body.enabled === true) {
            const plugin = resolvePlugin(existing.type);
            const stored = openConfig(k.cipher, existing).full;
            const merged = body.config !== undefined ? mergePatch(stored, body.config) : stored;
            const sealed = sealConfig(k.cipher, plugin.manifest.configSchema, validateConfig(plugin.validateConfig, merged));
            changes.config = sealed.config;
            changes.encrypted_config = sealed.encrypted_config;
            secretFields = sealed.secretFields;
          }
          await spec.checkReferences?.(changes, trx);
          const [updated] = (await trx(spec.table).where({ id: params.id }).update({ ...changes, updated_at: trx.fn.now() }).returning('*')) as Row[];
          await k.audit.append({
            category: 'lifecycle', ...actor(principal), action: `${spec.noun}_updated`, resource_type: spec.noun, resource_id: params.id,
            details: { fields: Object.keys(body), config_fields: body.config ? Object.keys(body.config) : [], ...(secretFields ? { secret_fields_set: secretFields } : {}) },
          }, trx);
          return updated;
        });
        return serialize(row);
      },
    },
    {
      method: 'DELETE', path: `${spec.basePath}/:id`, access: spec.permissions.delete, tag: spec.tag, summary: `Delete a ${spec.noun}`,
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        requireAllowed(principal, spec.permissions.delete, params.id);
        await knex.transaction(async (trx) => {
          const existing = await load(params.id, trx, true);
          refuseEnvManagedChange(existing);
          await trx(spec.table).where({ id: params.id }).delete();
          await k.audit.append({ category: 'lifecycle', ...actor(principal), action: `${spec.noun}_deleted`, resource_type: spec.noun, resource_id: params.id, details: { type: existing.type } }, trx);
        });
      },
    },
  ];
}
