import type { Knex } from 'knex';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';
import { ID_PATTERN, newId, type IdKind } from '../db/ids.js';
import { appError } from '../errors.js';
import { runList, type ListSpec } from '../http/list-query.js';
import type { Ctx, JsonSchema, RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';

type Row = Record<string, unknown> & { id: string };

/**
 * Declares a plain CRUD resource: list/get/create/update/delete routes with schema
 * validation, lifecycle audit events in the same transaction as the change, and
 * snake_case JSON. Resources with real behaviour (certificates, jobs) build on the
 * same pieces but write their own routes.
 */
export interface CrudSpec {
  kind: IdKind;
  table: string;
  basePath: string;
  tag: string;
  /** Used in messages and as the audit resource_type, e.g. "owner". */
  noun: string;
  permissions: { read: Permission; create: Permission; update: Permission; delete: Permission };
  /** Writable fields and their schemas. */
  properties: Record<string, JsonSchema>;
  required: string[];
  /** Columns stored as jsonb (stringified on write). */
  jsonColumns?: string[];
  list: ListSpec;
  /** Row -> API object (defaults to the row). */
  serialize?: (row: Row) => Record<string, unknown>;
  /** Business rules before insert/update; may adjust the data. Runs in the write transaction. */
  beforeWrite?: (data: Record<string, unknown>, ctx: { trx: Knex.Transaction; existing?: Row; principal: Principal }) => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Extra response schema for OpenAPI. */
  responseSchema?: JsonSchema;
}

export function createBodySchema(spec: CrudSpec): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: spec.required,
    properties: { id: { type: 'string', pattern: ID_PATTERN, description: 'Optional readable id; generated when omitted' }, ...spec.properties },
  };
}

export function updateBodySchema(spec: CrudSpec): JsonSchema {
  return { type: 'object', additionalProperties: false, minProperties: 1, properties: spec.properties };
}

export function toDbRow(spec: Pick<CrudSpec, 'jsonColumns'>, data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) out[k] = spec.jsonColumns?.includes(k) && v !== null && v !== undefined ? JSON.stringify(v) : v;
  return out;
}

export function crudRoutes(k: KernelServices, spec: CrudSpec): RouteDef[] {
  const knex = k.db.knex;
  const serialize = spec.serialize ?? ((r: Row) => r);
  const actor = (p: Principal) => ({ actor: p.actor, actor_type: p.actorType });
  const load = async (id: string, trx: Knex | Knex.Transaction = knex, lock = false): Promise<Row> => {
    const q = trx(spec.table).where({ id }).first();
    const row = (await (lock ? q.forUpdate() : q)) as Row | undefined;
    if (!row) throw appError('NOT_FOUND', `${spec.noun} ${id} not found`);
    return row;
  };
  const mark = (ctx: Ctx, id: string) => { ctx.state.auditResource = { type: spec.noun, id }; };

  return [
    {
      method: 'GET', path: spec.basePath, access: spec.permissions.read, tag: spec.tag, summary: `List ${spec.tag}`, list: spec.list,
      response: { schema: spec.responseSchema },
      handler: (_ctx, { list }) => runList(() => knex(spec.table), spec.list, list!, serialize),
    },
    {
      method: 'GET', path: `${spec.basePath}/:id`, access: spec.permissions.read, tag: spec.tag, summary: `Get a ${spec.noun}`,
      response: { schema: spec.responseSchema },
      handler: async (ctx, { params }) => { mark(ctx, params.id); return serialize(await load(params.id)); },
    },
    {
      method: 'POST', path: spec.basePath, access: spec.permissions.create, tag: spec.tag, summary: `Create a ${spec.noun}`,
      body: createBodySchema(spec), response: { status: 201, schema: spec.responseSchema },
      handler: async (ctx, { body, principal }) => {
        const row = await knex.transaction(async (trx) => {
          let data: Record<string, unknown> = { ...body, id: body.id ?? newId(spec.kind) };
          if (spec.beforeWrite) data = await spec.beforeWrite(data, { trx, principal });
          if (await trx(spec.table).where({ id: data.id }).first('id')) throw appError('CONFLICT', `${spec.noun} ${String(data.id)} already exists`);
          const [created] = (await trx(spec.table).insert(toDbRow(spec, data)).returning('*')) as Row[];
          await k.audit.append({ category: 'lifecycle', ...actor(principal), action: `${spec.noun}_created`, resource_type: spec.noun, resource_id: created.id, details: { fields: Object.keys(body) } }, trx);
          return created;
        });
        mark(ctx, row.id);
        return serialize(row);
      },
    },
    {
      method: 'PUT', path: `${spec.basePath}/:id`, access: spec.permissions.update, tag: spec.tag, summary: `Update a ${spec.noun} (fields not given are kept)`,
      body: updateBodySchema(spec), response: { schema: spec.responseSchema },
      handler: async (ctx, { params, body, principal }) => {
        mark(ctx, params.id);
        const row = await knex.transaction(async (trx) => {
          const existing = await load(params.id, trx, true);
          let data: Record<string, unknown> = { ...body };
          if (spec.beforeWrite) data = await spec.beforeWrite(data, { trx, existing, principal });
          const [updated] = (await trx(spec.table).where({ id: params.id }).update({ ...toDbRow(spec, data), updated_at: trx.fn.now() }).returning('*')) as Row[];
          await k.audit.append({ category: 'lifecycle', ...actor(principal), action: `${spec.noun}_updated`, resource_type: spec.noun, resource_id: params.id, details: { fields: Object.keys(body) } }, trx);
          return updated;
        });
        return serialize(row);
      },
    },
    {
      method: 'DELETE', path: `${spec.basePath}/:id`, access: spec.permissions.delete, tag: spec.tag, summary: `Delete a ${spec.noun}`,
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        await knex.transaction(async (trx) => {
          await load(params.id, trx, true);
          await trx(spec.table).where({ id: params.id }).delete();
          await k.audit.append({ category: 'lifecycle', ...actor(principal), action: `${spec.noun}_deleted`, resource_type: spec.noun, resource_id: params.id }, trx);
        });
      },
    },
  ];
}

/** Common list pieces. */
export const TIMESTAMP_SORTS = { created_at: 'created_at', updated_at: 'updated_at' } as const;
export const TIME_FILTERS: ListSpec['timeFilters'] = {
  created_after: { column: 'created_at', op: '>' },
  created_before: { column: 'created_at', op: '<' },
  updated_after: { column: 'updated_at', op: '>' },
};
