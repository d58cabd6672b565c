import { appError } from '../../errors.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { crudRoutes, type CrudSpec } from '../crud.js';
import { assertValidPatterns } from './patterns.js';
import { gatedProfileUpdateRoute } from '../../approvals/profile-edit-gate.js';
import { profileProperties, profilesList } from './schemas.js';

/**
 * Certificate profiles honour per-profile grants: a caller with profile.read on
 * some profiles sees only those (others read as 404), and edits need
 * profile.manage on that profile. New profiles need a global grant.
 */
export const profileSpec: CrudSpec = {
  kind: 'profile',
  table: 'certificate_profiles',
  basePath: '/api/v1/profiles',
  tag: 'profiles',
  noun: 'profile',
  permissions: { read: 'profile.read', create: 'profile.manage', update: 'profile.manage', delete: 'profile.manage' },
  properties: profileProperties,
  required: ['name'],
  jsonColumns: ['allowed_key_algorithms', 'allowed_ekus', 'required_san_patterns'],
  list: profilesList,
  referencedBy: [
    { table: 'managed_certificates', column: 'profile_id', noun: 'certificate' },
    // A grant left on a deleted id would silently apply to a later profile with that id.
    { table: 'api_key_roles', column: 'scope_id', noun: 'role grant', where: { scope_type: 'profile' } },
  ],
  readScope: (principal) => {
    const scope = principal.scopeFilter('profile.read');
    return scope ? (qb) => { qb.whereIn('certificate_profiles.id', scope.profileIds); } : null;
  },
  authorizeWrite: (principal, op, existing) => {
    if (op === 'create') {
      if (!principal.hasGlobal('profile.manage')) throw appError('FORBIDDEN', 'Creating a profile needs a global profile.manage grant');
      return;
    }
    principal.require('profile.manage', { profile_id: existing!.id });
  },
  beforeWrite: (data) => checkProfileWrite(data),
};

/** Profile rules beyond the schema, for creates, direct edits and approved edits alike. */
export function checkProfileWrite(data: Record<string, unknown>): Record<string, unknown> {
  assertValidPatterns(data.required_san_patterns, '/required_san_patterns');
  const algorithms = (data.allowed_key_algorithms as { algorithm: string }[] | undefined)?.map((a) => a.algorithm) ?? [];
  const repeated = algorithms.filter((a, i) => algorithms.indexOf(a) !== i);
  if (repeated.length) {
    throw appError('VALIDATION_FAILED', `allowed_key_algorithms lists ${repeated[0]} more than once`, { details: [{ path: '/allowed_key_algorithms', message: 'each algorithm at most once' }] });
  }
  return data;
}

/** CRUD, except that edits go through the approval gate (approvals/profile-edit-gate.ts). */
export function profileRoutes(k: KernelServices): RouteDef[] {
  return [...crudRoutes(k, { ...profileSpec, operations: ['list', 'get', 'create', 'delete'] }), gatedProfileUpdateRoute(k)];
}
