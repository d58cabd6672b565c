import type { Knex } from 'knex';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';
import { ID_PATTERN, newId, type IdKind } from '../db/ids.js';
import { appError } from '../errors.js';
import { runList, type ListSpec } from '../http/list-query.js';
import type { Ctx, JsonSchema, RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { actorOf } from '../audit/audit-log.js';
import { markAuditResource } from '../http/route.js';

export type Row = Record<string, unknown> & { id: string };
export type CrudOperation = 'list' | 'get' | 'create' | 'update' | 'delete';
export type WriteOperation = 'create' | 'update' | 'delete';
type Db = Knex | Knex.Transaction;

/** A field that names a row of another table (checked on write: 422 when missing). */
export interface ReferenceDef {
  table: string;
  noun: string;
}

/** Rows of another table that point at this resource and so block its deletion (409). */
export interface ReferencedByDef {
  table: string;
  column: string;
  noun: string;
  /** Extra equality conditions, e.g. only grants whose scope_type is profile. */
  where?: Record<string, string | number | boolean>;
}

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
  /**
   * Writable fields and their schemas. No `default` keywords here: the same
   * schemas validate partial updates, where ajv would inject the default.
   */
  properties: Record<string, JsonSchema>;
  required: string[];
  /** Fields writable on update (defaults to `properties`). */
  updateProperties?: Record<string, JsonSchema>;
  /** Cross-field rules (if/then, oneOf) added as `allOf` to the create and update bodies. */
  bodyRules?: JsonSchema[];
  /** Routes to generate (default: all five); a resource adds its own for the rest. */
  operations?: readonly CrudOperation[];
  /** Columns stored as jsonb (stringified on write). */
  jsonColumns?: string[];
  list: ListSpec;
  /** Row -> API object (defaults to the row). */
  serialize?: (row: Row) => Record<string, unknown>;
  /** Body fields that reference other tables; a non-null value must name an existing row. */
  references?: Record<string, ReferenceDef>;
  /** Deletion is refused with IN_USE while any of these reference the row. */
  referencedBy?: ReferencedByDef[];
  /**
   * Per-caller visibility: a condition added to list queries, and a hidden row
   * reads as 404 on GET by id (its existence is not leaked). null = sees all.
   */
  readScope?: (principal: Principal) => ((qb: Knex.QueryBuilder) => void) | null;
  /** Authorisation beyond the route permission (e.g. a per-profile grant). Throws a catalogued error. */
  authorizeWrite?: (principal: Principal, op: WriteOperation, existing?: Row) => void;
  /** Business rules before insert/update; may adjust the data. Runs in the write transaction. */
  beforeWrite?: (data: Record<string, unknown>, ctx: { trx: Knex.Transaction; existing?: Row; principal: Principal }) => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Runs in the delete transaction after the checks, before the row goes (e.g. revoke what it owned). */
  beforeDelete?: (row: Row, ctx: { trx: Knex.Transaction; principal: Principal }) => Promise<void> | void;
  /** Extra response schema for OpenAPI. */
  responseSchema?: JsonSchema;
}

const withRules = (schema: JsonSchema, rules?: JsonSchema[]): JsonSchema => (rules?.length ? { ...schema, allOf: rules } : schema);

export function createBodySchema(spec: CrudSpec): JsonSchema {
  return withRules({
    type: 'object',
    additionalProperties: false,
    required: spec.required,
    properties: { id: { type: 'string', pattern: ID_PATTERN, description: 'Optional readable id; generated when omitted' }, ...spec.properties },
  }, spec.bodyRules);
}

export function updateBodySchema(spec: CrudSpec): JsonSchema {
  return withRules({ type: 'object', additionalProperties: false, minProperties: 1, properties: spec.updateProperties ?? spec.properties }, spec.bodyRules);
}

export function toDbRow(spec: Pick<CrudSpec, 'jsonColumns'>, data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) out[k] = spec.jsonColumns?.includes(k) && v !== null && v !== undefined ? JSON.stringify(v) : v;
  return out;
}

/** Loads one row by id or throws 404 naming the resource. */
export async function loadRow(db: Db, table: string, noun: string, id: string, opts: { lock?: boolean; scope?: ((qb: Knex.QueryBuilder) => void) | null } = {}): Promise<Row> {
  const q = db(table).where(`${table}.id`, id).first();
  if (opts.scope) opts.scope(q);
  const row = (await (opts.lock ? q.forUpdate() : q)) as Row | undefined;
  if (!row) throw appError('NOT_FOUND', `${noun} ${id} not found`);
  return row;
}

/** 422 when a referenced row does not exist. Null/absent values are not references. */
export async function assertReferencesExist(db: Db, refs: Record<string, ReferenceDef> | undefined, data: Record<string, unknown>): Promise<void> {
  for (const [field, ref] of Object.entries(refs ?? {})) {
    const value = data[field];
    if (value === null || value === undefined) continue;
    if (!(await db(ref.table).where({ id: value }).first('id'))) {
      throw appError('REFERENCE_NOT_FOUND', `${field}: ${ref.noun} ${String(value)} does not exist`, { details: [{ path: `/${field}`, message: `${ref.noun} not found` }] });
    }
  }
}

/** 409 while other rows still reference this one. */
export async function assertNotReferenced(db: Db, noun: string, id: string, by: ReferencedByDef[] | undefined): Promise<void> {
  for (const ref of by ?? []) {
    const row = (await db(ref.table).where(ref.column, id).where(ref.where ?? {}).count({ n: '*' }).first()) as { n: number | string } | undefined;
    const n = Number(row?.n ?? 0);
    if (n > 0) throw appError('IN_USE', `${noun} ${id} is still referenced by ${n} ${ref.noun}${n === 1 ? '' : 's'}`);
  }
}

export function crudRoutes(k: KernelServices, spec: CrudSpec): RouteDef[] {
  const knex = k.db.knex;
  const serialize = spec.serialize ?? ((r: Row) => r);
  const ops = new Set<CrudOperation>(spec.operations ?? ['list', 'get', 'create', 'update', 'delete']);
  const mark = (ctx: Ctx, id: string) => markAuditResource(ctx, spec.noun, id);
  const scoped = (principal: Principal) => spec.readScope?.(principal) ?? null;
  const routes: RouteDef[] = [];

  if (ops.has('list')) routes.push({
    method: 'GET', path: spec.basePath, access: spec.permissions.read, tag: spec.tag, summary: `List ${spec.tag}`, list: spec.list,
    response: { schema: spec.responseSchema },
    handler: (_ctx, { list, principal }) => {
      const scope = scoped(principal);
      return runList(() => { const qb = knex(spec.table); if (scope) scope(qb); return qb; }, spec.list, list!, serialize);
    },
  });
  if (ops.has('get')) routes.push({
    method: 'GET', path: `${spec.basePath}/:id`, access: spec.permissions.read, tag: spec.tag, summary: `Get a ${spec.noun}`,
    response: { schema: spec.responseSchema },
    handler: async (ctx, { params, principal }) => {
      mark(ctx, params.id);
      return serialize(await loadRow(knex, spec.table, spec.noun, params.id, { scope: scoped(principal) }));
    },
  });
  if (ops.has('create')) routes.push({
    method: 'POST', path: spec.basePath, access: spec.permissions.create, tag: spec.tag, summary: `Create a ${spec.noun}`,
    body: createBodySchema(spec), response: { status: 201, schema: spec.responseSchema },
    handler: async (ctx, { body, principal }) => {
      spec.authorizeWrite?.(principal, 'create');
      const row = await knex.transaction(async (trx) => {
        let data: Record<string, unknown> = { ...body, id: body.id ?? newId(spec.kind) };
        if (spec.beforeWrite) data = await spec.beforeWrite(data, { trx, principal });
        await assertReferencesExist(trx, spec.references, data);
        if (await trx(spec.table).where({ id: data.id }).first('id')) throw appError('CONFLICT', `${spec.noun} ${String(data.id)} already exists`);
        const [created] = (await trx(spec.table).insert(toDbRow(spec, data)).returning('*')) as Row[];
        await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: `${spec.noun}_created`, resource_type: spec.noun, resource_id: created.id, details: { fields: Object.keys(body) } }, trx);
        return created;
      });
      mark(ctx, row.id);
      return serialize(row);
    },
  });
  if (ops.has('update')) routes.push({
    method: 'PUT', path: `${spec.basePath}/:id`, access: spec.permissions.update, tag: spec.tag, summary: `Update a ${spec.noun} (fields not given are kept)`,
    body: updateBodySchema(spec), response: { schema: spec.responseSchema },
    handler: async (ctx, { params, body, principal }) => {
      mark(ctx, params.id);
      const row = await knex.transaction(async (trx) => {
        const existing = await loadRow(trx, spec.table, spec.noun, params.id, { lock: true });
        spec.authorizeWrite?.(principal, 'update', existing);
        let data: Record<string, unknown> = { ...body };
        if (spec.beforeWrite) data = await spec.beforeWrite(data, { trx, existing, principal });
        await assertReferencesExist(trx, spec.references, data);
        const [updated] = (await trx(spec.table).where({ id: params.id }).update({ ...toDbRow(spec, data), updated_at: trx.fn.now() }).returning('*')) as Row[];
        await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: `${spec.noun}_updated`, resource_type: spec.noun, resource_id: params.id, details: { fields: Object.keys(body) } }, trx);
        return updated;
      });
      return serialize(row);
    },
  });
  if (ops.has('delete')) routes.push({
    method: 'DELETE', path: `${spec.basePath}/:id`, access: spec.permissions.delete, tag: spec.tag, summary: `Delete a ${spec.noun}`,
    handler: async (ctx, { params, principal }) => {
      mark(ctx, params.id);
      await knex.transaction(async (trx) => {
        const existing = await loadRow(trx, spec.table, spec.noun, params.id, { lock: true });
        spec.authorizeWrite?.(principal, 'delete', existing);
        await assertNotReferenced(trx, spec.noun, params.id, spec.referencedBy);
        if (spec.beforeDelete) await spec.beforeDelete(existing, { trx, principal });
        await trx(spec.table).where({ id: params.id }).delete();
        const details = typeof existing.name === 'string' ? { name: existing.name } : {};
        await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: `${spec.noun}_deleted`, resource_type: spec.noun, resource_id: params.id, details }, trx);
      });
    },
  });
  return routes;
}

/** Common list pieces. */
export const TIMESTAMP_SORTS = { created_at: 'created_at', updated_at: 'updated_at' } as const;
export const TIME_FILTERS: ListSpec['timeFilters'] = {
  created_after: { column: 'created_at', op: '>' },
  created_before: { column: 'created_at', op: '<' },
  updated_after: { column: 'updated_at', op: '>' },
};

/** A `?name=true|false` filter on a boolean column. */
export const booleanFilter = (column: string, description: string): NonNullable<ListSpec['filters']>[string] => ({
  description, enum: ['true', 'false'], apply: (qb, values) => { if (values.length === 1) qb.where(column, values[0] === 'true'); },
});

/** A `?name=true|false` filter on whether a timestamp column is set (e.g. read=, resolved=). */
export const isSetFilter = (column: string, description: string): NonNullable<ListSpec['filters']>[string] => ({
  description, enum: ['true', 'false'], apply: (qb, values) => {
    if (values.length !== 1) return; // both true and false: no condition
    if (values[0] === 'true') qb.whereNotNull(column);
    else qb.whereNull(column);
  },
});
