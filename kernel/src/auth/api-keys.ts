import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { Principal, type Grant } from './principal.js';
import { isPermission, PERMISSIONS, type ScopeType } from './permissions.js';

const KEY_PREFIX = 'cctl_';

/** A new random API key: shown once, only its SHA-256 is stored. */
export function generateApiKey(): { key: string; hash: string; prefix: string } {
  const key = KEY_PREFIX + crypto.randomBytes(32).toString('base64url');
  return { key, hash: hashApiKey(key), prefix: key.slice(0, KEY_PREFIX.length + 6) };
}

export const hashApiKey = (key: string) => crypto.createHash('sha256').update(key, 'utf8').digest('hex');

/** Reads "Authorization: Bearer <key>"; anything else is no key. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

interface KeyRow {
  id: string;
  name: string;
  key_hash: string;
  actor_type: 'user' | 'agent' | 'service';
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

interface GrantRow {
  role_id: string | null;
  role: string | null;
  scope_type: ScopeType | null;
  scope_id: string | null;
  permission: string | null;
}

/**
 * Resolves an API key to a principal with its grants, or null, in one query (this
 * runs on every request). The row is found by its hash, then the hashes are compared
 * in constant time so the lookup path does not leak how much of a guess matched.
 */
export async function authenticateApiKey(knex: Knex, presented: string): Promise<Principal | null> {
  const hash = hashApiKey(presented);
  const rows = (await knex('api_keys as k')
    .leftJoin('api_key_roles as g', 'g.api_key_id', 'k.id')
    .leftJoin('roles as r', 'r.id', 'g.role_id')
    .leftJoin('role_permissions as p', 'p.role_id', 'g.role_id')
    .where('k.key_hash', hash)
    .select('k.id', 'k.name', 'k.key_hash', 'k.actor_type', 'k.expires_at', 'k.revoked_at', 'k.last_used_at',
      'g.role_id', 'r.name as role', 'g.scope_type', 'g.scope_id', 'p.permission')) as (KeyRow & GrantRow)[];
  const row = rows[0];
  const expected = Buffer.from(row?.key_hash ?? '0'.repeat(64), 'hex');
  const actual = Buffer.from(hash, 'hex');
  if (!crypto.timingSafeEqual(expected, actual) || !row) return null;
  if (row.revoked_at) return null;
  if (row.expires_at && row.expires_at.getTime() <= Date.now()) return null;
  // Touch last_used_at at most once a minute, off the request's path: reads stay reads.
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) {
    void knex('api_keys').where({ id: row.id }).update({ last_used_at: new Date() }).catch(() => {});
  }
  return principalOf(row, rows);
}

/** Grants from (role, scope, permission) rows. */
function principalOf(key: Pick<KeyRow, 'id' | 'name' | 'actor_type'>, rows: GrantRow[]): Principal {
  const grants: Grant[] = [];
  const roles = new Map<string, { role_id: string; role: string; scope_type: ScopeType; scope_id: string }>();
  for (const r of rows) {
    if (!r.role_id || !r.role || !r.scope_type || r.scope_id === null) continue;
    roles.set(`${r.role_id}|${r.scope_type}|${r.scope_id}`, { role_id: r.role_id, role: r.role, scope_type: r.scope_type, scope_id: r.scope_id });
    // A role granted on one profile or issuer confers only the permissions that can be scoped that way;
    // a global-only permission (target.manage, issuer.create, ...) in that role is not granted at all.
    if (r.permission && isPermission(r.permission) && (PERMISSIONS[r.permission].scopes as readonly ScopeType[]).includes(r.scope_type)) {
      grants.push({ permission: r.permission, scopeType: r.scope_type, scopeId: r.scope_id });
    }
  }
  return new Principal(key.id, key.actor_type, key.id, key.name, grants, [...roles.values()]);
}

export async function loadPrincipal(knex: Knex, key: Pick<KeyRow, 'id' | 'name' | 'actor_type'>): Promise<Principal> {
  const rows = (await knex('api_key_roles as g')
    .join('roles as r', 'r.id', 'g.role_id')
    .leftJoin('role_permissions as p', 'p.role_id', 'g.role_id')
    .where('g.api_key_id', key.id)
    .select('g.role_id', 'r.name as role', 'g.scope_type', 'g.scope_id', 'p.permission')) as GrantRow[];
  return principalOf(key, rows);
}
