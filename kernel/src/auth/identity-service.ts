import type { Knex } from 'knex';
import type { AuditLog } from '../audit/audit-log.js';
import { newId } from '../db/ids.js';
import { LOCK_KEYS } from '../db/database.js';
import { appError } from '../errors.js';
import { generateApiKey } from './api-keys.js';
import { DEFAULT_ROLES, PERMISSIONS, type Permission, type ScopeType } from './permissions.js';
import type { Principal } from './principal.js';
import { actorOf, SYSTEM_ACTOR } from '../audit/audit-log.js';

export interface RoleGrantInput {
  role_id: string;
  scope_type?: ScopeType;
  scope_id?: string;
}

export interface CreatedKey {
  id: string;
  key: string;
  name: string;
  key_prefix: string;
}


/** Roles, API keys and grants. The rules live here; routes stay thin. */
export class IdentityService {
  constructor(private readonly knex: Knex, private readonly audit: AuditLog) {}

  /** Re-applies the built-in roles' permission sets (idempotent; runs at every start). */
  async syncDefaultRoles(): Promise<void> {
    await this.knex.transaction(async (trx) => {
      for (const role of DEFAULT_ROLES) {
        await trx('roles').insert({ id: role.id, name: role.name, description: role.description, builtin: true })
          .onConflict('id').merge({ name: role.name, description: role.description, builtin: true });
        await trx('role_permissions').where({ role_id: role.id }).whereNotIn('permission', role.permissions).delete();
        await trx('role_permissions').insert(role.permissions.map((permission) => ({ role_id: role.id, permission }))).onConflict(['role_id', 'permission']).ignore();
      }
    });
  }

  async adminExists(trx: Knex | Knex.Transaction = this.knex): Promise<boolean> {
    const row = await trx('api_key_roles as g')
      .join('api_keys as k', 'k.id', 'g.api_key_id')
      .where({ 'g.role_id': 'role-admin', 'g.scope_type': 'global' })
      .whereNull('k.revoked_at')
      .where((w) => w.whereNull('k.expires_at').orWhere('k.expires_at', '>', trx.fn.now()))
      .first('k.id');
    return Boolean(row);
  }

  /**
   * Creates an admin key if, and only if, no admin exists. Serialised across replicas
   * so two kernels starting together cannot both mint one.
   */
  async createFirstAdmin(name: string, via: 'initial' | 'bootstrap'): Promise<CreatedKey | null> {
    return this.knex.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?)', [LOCK_KEYS.firstAdmin]);
      if (await this.adminExists(trx)) return null;
      const created = await this.insertKey(trx, { name, description: via === 'initial' ? 'Created on first start' : 'Created through /api/v1/auth/bootstrap', actor_type: 'user', created_by: 'system' });
      await trx('api_key_roles').insert({ id: newId('grant'), api_key_id: created.id, role_id: 'role-admin', scope_type: 'global', scope_id: '', granted_by: 'system' });
      await this.audit.append({ category: 'auth', ...SYSTEM_ACTOR, action: via === 'initial' ? 'initial_admin_created' : 'bootstrap_admin_created', resource_type: 'api_key', resource_id: created.id, details: { name } }, trx);
      return created;
    });
  }

  private async insertKey(trx: Knex.Transaction, k: { name: string; description?: string; actor_type: 'user' | 'agent' | 'service'; created_by: string; expires_at?: Date | null }): Promise<CreatedKey> {
    const { key, hash, prefix } = generateApiKey();
    const id = newId('apiKey');
    await trx('api_keys').insert({ id, name: k.name, description: k.description ?? '', key_hash: hash, key_prefix: prefix, actor_type: k.actor_type, created_by: k.created_by, expires_at: k.expires_at ?? null });
    return { id, key, name: k.name, key_prefix: prefix };
  }

  async createKey(by: Principal, input: { name: string; description?: string; actor_type?: 'user' | 'agent' | 'service'; expires_at?: string; roles?: RoleGrantInput[] }): Promise<CreatedKey> {
    if (input.roles?.length && !by.hasGlobal('auth.role.assign')) throw appError('FORBIDDEN', 'Granting roles needs the auth.role.assign permission');
    const expires = input.expires_at ? new Date(input.expires_at) : null;
    if (expires && expires.getTime() <= Date.now()) throw appError('VALIDATION_FAILED', 'expires_at must be in the future');
    return this.knex.transaction(async (trx) => {
      const created = await this.insertKey(trx, { name: input.name, description: input.description, actor_type: input.actor_type ?? 'user', created_by: by.actor, expires_at: expires });
      await this.audit.append({ category: 'auth', ...actorOf(by), action: 'api_key_created', resource_type: 'api_key', resource_id: created.id, details: { name: input.name, expires_at: input.expires_at ?? null } }, trx);
      for (const g of input.roles ?? []) await this.grantInTx(trx, by, created.id, g);
      return created;
    });
  }

  async revokeKey(by: Principal, keyId: string): Promise<void> {
    await this.knex.transaction(async (trx) => {
      const key = await trx('api_keys').where({ id: keyId }).forUpdate().first();
      if (!key) throw appError('NOT_FOUND', `API key ${keyId} not found`);
      if (key.revoked_at) return;
      await this.assertNotLastAdmin(trx, { keyId });
      await trx('api_keys').where({ id: keyId }).update({ revoked_at: trx.fn.now(), updated_at: trx.fn.now() });
      await this.audit.append({ category: 'auth', ...actorOf(by), action: 'api_key_revoked', resource_type: 'api_key', resource_id: keyId, details: { name: key.name } }, trx);
    });
  }

  async grant(by: Principal, keyId: string, g: RoleGrantInput): Promise<Record<string, unknown>> {
    return this.knex.transaction((trx) => this.grantInTx(trx, by, keyId, g));
  }

  private async grantInTx(trx: Knex.Transaction, by: Principal, keyId: string, g: RoleGrantInput) {
    const scopeType = g.scope_type ?? 'global';
    const scopeId = scopeType === 'global' ? '' : (g.scope_id ?? '');
    if (scopeType !== 'global' && !scopeId) throw appError('VALIDATION_FAILED', `scope_id is required for a ${scopeType} scope`);
    const key = await trx('api_keys').where({ id: keyId }).first();
    if (!key) throw appError('NOT_FOUND', `API key ${keyId} not found`);
    if (key.revoked_at) throw appError('INVALID_STATE', 'Cannot grant roles to a revoked key');
    const role = await trx('roles').where({ id: g.role_id }).first();
    if (!role) throw appError('REFERENCE_NOT_FOUND', `Role ${g.role_id} not found`);
    // The same escalation guard as for editing a role: granting a role hands out its permissions.
    const rolePermissions = (await trx('role_permissions').where({ role_id: g.role_id }).pluck('permission')) as Permission[];
    this.assertCanHandOut(by, rolePermissions);
    if (scopeType !== 'global') {
      const table = scopeType === 'profile' ? 'certificate_profiles' : 'issuers';
      if (!(await trx(table).where({ id: scopeId }).first('id'))) throw appError('REFERENCE_NOT_FOUND', `${scopeType} ${scopeId} not found`);
    }
    const existing = await trx('api_key_roles').where({ api_key_id: keyId, role_id: g.role_id, scope_type: scopeType, scope_id: scopeId }).first();
    if (existing) throw appError('CONFLICT', 'This key already has that role in that scope');
    const row = { id: newId('grant'), api_key_id: keyId, role_id: g.role_id, scope_type: scopeType, scope_id: scopeId, granted_by: by.actor };
    await trx('api_key_roles').insert(row);
    await this.audit.append({ category: 'auth', ...actorOf(by), action: 'role_assigned', resource_type: 'api_key', resource_id: keyId, details: { role_id: g.role_id, scope_type: scopeType, scope_id: scopeId } }, trx);
    return { ...row, role: role.name };
  }

  async ungrant(by: Principal, keyId: string, grantId: string): Promise<void> {
    await this.knex.transaction(async (trx) => {
      const grant = await trx('api_key_roles').where({ id: grantId, api_key_id: keyId }).first();
      if (!grant) throw appError('NOT_FOUND', `Grant ${grantId} not found on key ${keyId}`);
      await this.assertNotLastAdmin(trx, { grantId });
      await trx('api_key_roles').where({ id: grantId }).delete();
      await this.audit.append({ category: 'auth', ...actorOf(by), action: 'role_revoked', resource_type: 'api_key', resource_id: keyId, details: { role_id: grant.role_id, scope_type: grant.scope_type, scope_id: grant.scope_id } }, trx);
    });
  }

  /** Refuses a change that would leave no usable global admin (a lock-out). */
  private async assertNotLastAdmin(trx: Knex.Transaction, removing: { keyId?: string; grantId?: string }) {
    const admins = (await trx('api_key_roles as g')
      .join('api_keys as k', 'k.id', 'g.api_key_id')
      .where({ 'g.role_id': 'role-admin', 'g.scope_type': 'global' })
      .whereNull('k.revoked_at')
      .where((w) => w.whereNull('k.expires_at').orWhere('k.expires_at', '>', trx.fn.now()))
      .select('g.id as grant_id', 'k.id as key_id')) as { grant_id: string; key_id: string }[];
    const remaining = admins.filter((a) => a.key_id !== removing.keyId && a.grant_id !== removing.grantId);
    if (admins.length > 0 && remaining.length === 0) throw appError('INVALID_STATE', 'This would remove the last admin; grant admin to another key first');
  }

  async createRole(by: Principal, input: { id?: string; name: string; description?: string; permissions: Permission[] }) {
    this.assertCanHandOut(by, input.permissions);
    return this.knex.transaction(async (trx) => {
      const id = input.id ?? `role-${input.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`;
      await trx('roles').insert({ id, name: input.name, description: input.description ?? '', builtin: false });
      if (input.permissions.length) await trx('role_permissions').insert([...new Set(input.permissions)].map((permission) => ({ role_id: id, permission })));
      await this.audit.append({ category: 'auth', ...actorOf(by), action: 'role_created', resource_type: 'role', resource_id: id, details: { name: input.name, permissions: input.permissions } }, trx);
      return id;
    });
  }

  async updateRole(by: Principal, id: string, input: { name?: string; description?: string; permissions?: Permission[] }) {
    await this.knex.transaction(async (trx) => {
      const role = await trx('roles').where({ id }).forUpdate().first();
      if (!role) throw appError('NOT_FOUND', `Role ${id} not found`);
      if (role.builtin && (input.permissions || input.name)) throw appError('INVALID_STATE', 'Built-in roles keep their name and permissions; create a custom role instead');
      if (input.permissions) {
        this.assertCanHandOut(by, input.permissions);
        await trx('role_permissions').where({ role_id: id }).delete();
        if (input.permissions.length) await trx('role_permissions').insert([...new Set(input.permissions)].map((permission) => ({ role_id: id, permission })));
      }
      const patch: Record<string, unknown> = { updated_at: trx.fn.now() };
      if (input.name !== undefined) patch.name = input.name;
      if (input.description !== undefined) patch.description = input.description;
      await trx('roles').where({ id }).update(patch);
      await this.audit.append({ category: 'auth', ...actorOf(by), action: 'role_updated', resource_type: 'role', resource_id: id, details: input as Record<string, unknown> }, trx);
    });
  }

  async setRolePermission(by: Principal, id: string, permission: Permission, present: boolean) {
    await this.knex.transaction(async (trx) => {
      const role = await trx('roles').where({ id }).forUpdate().first();
      if (!role) throw appError('NOT_FOUND', `Role ${id} not found`);
      if (role.builtin) throw appError('INVALID_STATE', 'Built-in roles keep their permissions; create a custom role instead');
      if (present) {
        this.assertCanHandOut(by, [permission]);
        await trx('role_permissions').insert({ role_id: id, permission }).onConflict(['role_id', 'permission']).ignore();
      } else {
        const n = await trx('role_permissions').where({ role_id: id, permission }).delete();
        if (n === 0) throw appError('NOT_FOUND', `Role ${id} does not have ${permission}`);
      }
      await this.audit.append({ category: 'auth', ...actorOf(by), action: present ? 'role_permission_added' : 'role_permission_removed', resource_type: 'role', resource_id: id, details: { permission } }, trx);
    });
  }

  async deleteRole(by: Principal, id: string) {
    await this.knex.transaction(async (trx) => {
      const role = await trx('roles').where({ id }).forUpdate().first();
      if (!role) throw appError('NOT_FOUND', `Role ${id} not found`);
      if (role.builtin) throw appError('INVALID_STATE', 'Built-in roles cannot be deleted');
      const used = await trx('api_key_roles').where({ role_id: id }).first('id');
      if (used) throw appError('IN_USE', 'The role is still granted to API keys; revoke those grants first');
      await trx('roles').where({ id }).delete();
      await this.audit.append({ category: 'auth', ...actorOf(by), action: 'role_deleted', resource_type: 'role', resource_id: id, details: { name: role.name } }, trx);
    });
  }

  /** A caller cannot put a permission into a role that they do not hold themselves (escalation guard). */
  private assertCanHandOut(by: Principal, permissions: Permission[]) {
    const missing = permissions.filter((p) => !by.hasGlobal(p) && p !== 'agent.operate');
    if (missing.length) throw appError('FORBIDDEN', `You cannot hand out permissions you do not hold: ${missing.join(', ')}`);
    const unknown = permissions.filter((p) => !Object.hasOwn(PERMISSIONS, p));
    if (unknown.length) throw appError('VALIDATION_FAILED', `Unknown permissions: ${unknown.join(', ')}`);
  }
}
