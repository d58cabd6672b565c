import crypto from 'node:crypto';
import { appError } from '../errors.js';
import { ID_PATTERN } from '../db/ids.js';
import type { ListSpec } from '../http/list-query.js';
import { runList } from '../http/list-query.js';
import type { RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { ALL_PERMISSIONS, PERMISSIONS, type Permission } from './permissions.js';
import type { IdentityService } from './identity-service.js';
import { markAuditResource } from '../http/route.js';

const permissionSchema = { type: 'string', enum: ALL_PERMISSIONS };
const grantSchema = {
  type: 'object', additionalProperties: false, required: ['role_id'],
  properties: {
    role_id: { type: 'string', minLength: 1, maxLength: 64 },
    scope_type: { type: 'string', enum: ['global', 'profile', 'issuer'] },
    scope_id: { type: 'string', maxLength: 64 },
  },
};

const keysList: ListSpec = {
  sortable: { created_at: 'created_at', name: 'name', last_used_at: 'last_used_at' },
  defaultSort: '-created_at',
  nullable: ['last_used_at'],
  filters: { actor_type: { description: 'user, agent or service', column: 'actor_type', enum: ['user', 'agent', 'service'] } },
  fields: ['id', 'name', 'description', 'key_prefix', 'actor_type', 'created_by', 'expires_at', 'last_used_at', 'revoked_at', 'created_at', 'roles'],
};

const rolesList: ListSpec = {
  sortable: { name: 'name', created_at: 'created_at' },
  defaultSort: 'name',
  fields: ['id', 'name', 'description', 'builtin', 'permissions', 'created_at', 'updated_at'],
};

const sameSecret = (a: string, b: string) => {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
};

export function authRoutes(k: KernelServices, identity: IdentityService): RouteDef[] {
  const knex = k.db.knex;

  const rolesWithPermissions = async (ids: string[]) => {
    const perms = (await knex('role_permissions').whereIn('role_id', ids).orderBy('permission')) as { role_id: string; permission: string }[];
    const by = new Map<string, string[]>();
    for (const p of perms) (by.get(p.role_id) ?? by.set(p.role_id, []).get(p.role_id)!).push(p.permission);
    return by;
  };
  const grantsFor = async (keyIds: string[]) => {
    const rows = (await knex('api_key_roles as g').join('roles as r', 'r.id', 'g.role_id').whereIn('g.api_key_id', keyIds)
      .select('g.id', 'g.api_key_id', 'g.role_id', 'r.name as role', 'g.scope_type', 'g.scope_id', 'g.granted_by', 'g.created_at')) as { api_key_id: string }[];
    const by = new Map<string, unknown[]>();
    for (const { api_key_id, ...g } of rows) (by.get(api_key_id) ?? by.set(api_key_id, []).get(api_key_id)!).push(g);
    return by;
  };
  const serializeKey = (row: Record<string, unknown>, roles: unknown[] = []): Record<string, unknown> & { id: string } => {
    const { key_hash: _hash, updated_at: _u, ...rest } = row;
    return { ...rest, roles } as unknown as Record<string, unknown> & { id: string };
  };
  const loadKey = async (id: string) => {
    const row = await knex('api_keys').where({ id }).first();
    if (!row) throw appError('NOT_FOUND', `API key ${id} not found`);
    return serializeKey(row, (await grantsFor([id])).get(id));
  };
  const loadRole = async (id: string) => {
    const row = await knex('roles').where({ id }).first();
    if (!row) throw appError('NOT_FOUND', `Role ${id} not found`);
    return { ...row, permissions: (await rolesWithPermissions([id])).get(id) ?? [] };
  };

  return [
    {
      method: 'GET', path: '/api/v1/auth/info', access: 'public', tag: 'auth', summary: 'How to authenticate (used by the dashboard before login)',
      handler: async () => ({
        auth_type: k.config.authType,
        bootstrap_available: Boolean(k.config.bootstrapToken) && !(await identity.adminExists()),
      }),
    },
    {
      method: 'GET', path: '/api/v1/auth/check', access: 'public', tag: 'auth', summary: 'Checks the presented credentials',
      handler: (_ctx, { principal }) => {
        if (!principal) throw appError('UNAUTHENTICATED');
        return { valid: true, actor: principal.actor, name: principal.name };
      },
    },
    {
      method: 'GET', path: '/api/v1/auth/me', access: 'authenticated', tag: 'auth', summary: 'The caller, their roles and effective permissions',
      handler: (_ctx, { principal }) => ({
        actor: principal.actor,
        actor_type: principal.actorType,
        name: principal.name,
        key_id: principal.keyId,
        roles: principal.roles,
        effective_permissions: principal.effectivePermissions(),
        scoped_grants: principal.grants.filter((g) => g.scopeType !== 'global').map((g) => ({ permission: g.permission, scope_type: g.scopeType, scope_id: g.scopeId })),
        auth_type: k.config.authType,
      }),
    },
    {
      method: 'GET', path: '/api/v1/auth/bootstrap', access: 'public', tag: 'auth', summary: 'Whether the one-shot bootstrap endpoint is open',
      handler: async () => ({ enabled: Boolean(k.config.bootstrapToken), available: Boolean(k.config.bootstrapToken) && !(await identity.adminExists()) }),
    },
    {
      method: 'POST', path: '/api/v1/auth/bootstrap', access: 'public', tag: 'auth', summary: 'Creates the first admin key with CERTCTL_BOOTSTRAP_TOKEN; closes once an admin exists',
      body: { type: 'object', additionalProperties: false, required: ['token'], properties: { token: { type: 'string', minLength: 1, maxLength: 512 }, name: { type: 'string', minLength: 1, maxLength: 100 } } },
      response: { status: 201 },
      handler: async (_ctx, { body }) => {
        if (!k.config.bootstrapToken) throw appError('BOOTSTRAP_DISABLED');
        if (await identity.adminExists()) throw appError('BOOTSTRAP_CLOSED');
        if (!sameSecret(body.token, k.config.bootstrapToken)) throw appError('BOOTSTRAP_TOKEN_INVALID');
        const created = await identity.createFirstAdmin(body.name ?? 'bootstrap-admin', 'bootstrap');
        if (!created) throw appError('BOOTSTRAP_CLOSED');
        return { id: created.id, name: created.name, key: created.key, key_prefix: created.key_prefix, role: 'admin', note: 'Store this key now: it is not shown again.' };
      },
    },
    {
      method: 'GET', path: '/api/v1/auth/permissions', access: 'authenticated', tag: 'auth', summary: 'The permission catalogue',
      handler: () => ({ data: Object.entries(PERMISSIONS).map(([name, p]) => ({ name, description: p.description, scopes: p.scopes })) }),
    },
    // Roles
    {
      method: 'GET', path: '/api/v1/auth/roles', access: 'auth.role.list', tag: 'auth', summary: 'List roles', list: rolesList,
      handler: async (_ctx, { list }) => {
        const env = await runList(() => knex('roles'), rolesList, list!, (r: Record<string, unknown> & { id: string }) => r);
        const perms = await rolesWithPermissions(env.data.map((r) => r.id as string));
        return { ...env, data: env.data.map((r) => (list!.fields && !list!.fields.includes('permissions') ? r : { ...r, permissions: perms.get(r.id as string) ?? [] })) };
      },
    },
    {
      method: 'GET', path: '/api/v1/auth/roles/:id', access: 'auth.role.list', tag: 'auth', summary: 'Get a role with its permissions',
      handler: (_ctx, { params }) => loadRole(params.id),
    },
    {
      method: 'POST', path: '/api/v1/auth/roles', access: 'auth.role.create', tag: 'auth', summary: 'Create a custom role', response: { status: 201 },
      body: { type: 'object', additionalProperties: false, required: ['name'], properties: {
        id: { type: 'string', pattern: ID_PATTERN }, name: { type: 'string', minLength: 1, maxLength: 64 },
        description: { type: 'string', maxLength: 500 }, permissions: { type: 'array', items: permissionSchema, maxItems: 100, uniqueItems: true } } },
      handler: async (ctx, { body, principal }) => {
        const id = await identity.createRole(principal, { ...body, permissions: body.permissions ?? [] });
        markAuditResource(ctx, 'role', id);
        return loadRole(id);
      },
    },
    {
      method: 'PUT', path: '/api/v1/auth/roles/:id', access: 'auth.role.edit', tag: 'auth', summary: 'Edit a role',
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: {
        name: { type: 'string', minLength: 1, maxLength: 64 }, description: { type: 'string', maxLength: 500 },
        permissions: { type: 'array', items: permissionSchema, maxItems: 100, uniqueItems: true } } },
      handler: async (_ctx, { params, body, principal }) => {
        await identity.updateRole(principal, params.id, body);
        return loadRole(params.id);
      },
    },
    {
      method: 'DELETE', path: '/api/v1/auth/roles/:id', access: 'auth.role.delete', tag: 'auth', summary: 'Delete a custom role that nobody holds',
      handler: async (_ctx, { params, principal }) => { await identity.deleteRole(principal, params.id); },
    },
    {
      method: 'POST', path: '/api/v1/auth/roles/:id/permissions', access: 'auth.role.edit', tag: 'auth', summary: 'Add a permission to a custom role',
      body: { type: 'object', additionalProperties: false, required: ['permission'], properties: { permission: permissionSchema } },
      handler: async (_ctx, { params, body, principal }) => {
        await identity.setRolePermission(principal, params.id, body.permission as Permission, true);
        return loadRole(params.id);
      },
    },
    {
      method: 'DELETE', path: '/api/v1/auth/roles/:id/permissions/:permission', access: 'auth.role.edit', tag: 'auth', summary: 'Remove a permission from a custom role',
      handler: async (_ctx, { params, principal }) => {
        if (!Object.hasOwn(PERMISSIONS, params.permission)) throw appError('NOT_FOUND', `No permission ${params.permission}`);
        await identity.setRolePermission(principal, params.id, params.permission as Permission, false);
      },
    },
    // API keys
    {
      method: 'GET', path: '/api/v1/auth/keys', access: 'auth.key.list', tag: 'auth', summary: 'List API keys (never their secret)', list: keysList,
      handler: async (_ctx, { list }) => {
        const env = await runList(() => knex('api_keys'), keysList, list!, (r: Record<string, unknown> & { id: string }) => serializeKey(r));
        const grants = await grantsFor(env.data.map((r) => r.id as string));
        return { ...env, data: env.data.map((r) => (list!.fields && !list!.fields.includes('roles') ? r : { ...r, roles: grants.get(r.id as string) ?? [] })) };
      },
    },
    {
      method: 'GET', path: '/api/v1/auth/keys/:id', access: 'auth.key.list', tag: 'auth', summary: 'Get an API key and its roles',
      handler: (_ctx, { params }) => loadKey(params.id),
    },
    {
      method: 'POST', path: '/api/v1/auth/keys', access: 'auth.key.create', tag: 'auth', summary: 'Create an API key; the key is returned once', response: { status: 201 },
      body: { type: 'object', additionalProperties: false, required: ['name'], properties: {
        name: { type: 'string', minLength: 1, maxLength: 100 }, description: { type: 'string', maxLength: 500 },
        actor_type: { type: 'string', enum: ['user', 'agent', 'service'] }, expires_at: { type: 'string', format: 'date-time' },
        roles: { type: 'array', items: grantSchema, maxItems: 20 } } },
      handler: async (ctx, { body, principal }) => {
        const created = await identity.createKey(principal, body);
        markAuditResource(ctx, 'api_key', created.id);
        return { ...(await loadKey(created.id)), key: created.key, note: 'Store this key now: it is not shown again.' };
      },
    },
    {
      method: 'DELETE', path: '/api/v1/auth/keys/:id', access: 'auth.key.revoke', tag: 'auth', summary: 'Revoke an API key',
      handler: async (_ctx, { params, principal }) => { await identity.revokeKey(principal, params.id); },
    },
    {
      method: 'POST', path: '/api/v1/auth/keys/:id/roles', access: 'auth.role.assign', tag: 'auth', summary: 'Grant a role to a key, globally or on one profile or issuer', response: { status: 201 },
      body: grantSchema,
      handler: (_ctx, { params, body, principal }) => identity.grant(principal, params.id, body),
    },
    {
      method: 'DELETE', path: '/api/v1/auth/keys/:id/roles/:grant_id', access: 'auth.role.assign', tag: 'auth', summary: 'Revoke a role grant from a key',
      handler: async (_ctx, { params, principal }) => { await identity.ungrant(principal, params.id, params.grant_id); },
    },
  ];
}
