import type { Knex } from 'knex';
import type { Permission } from '../../auth/permissions.js';
import type { Principal } from '../../auth/principal.js';
import type { ListSpec } from '../../http/list-query.js';
import { TIME_FILTERS } from '../crud.js';

export const CERTIFICATE_STATUSES = ['Pending', 'Active', 'Expiring', 'Expired', 'RenewalInProgress', 'Failed', 'Revoked', 'Archived'] as const;
export type CertificateStatus = (typeof CERTIFICATE_STATUSES)[number];

export interface CertificateRow {
  id: string;
  name: string;
  common_name: string;
  sans: string[];
  environment: string;
  status: CertificateStatus;
  owner_id: string | null;
  issuer_id: string | null;
  profile_id: string | null;
  renewal_policy_id: string | null;
  agent_id: string | null;
  serial_number: string | null;
  fingerprint_sha256: string | null;
  key_algorithm: string | null;
  key_size: number | null;
  not_before: Date | null;
  expires_at: Date | null;
  tags: Record<string, string>;
  last_renewal_at: Date | null;
  last_deployment_at: Date | null;
  revoked_at: Date | null;
  revocation_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/** The API shape: the seed's field names, in the order a reader expects them. */
export const CERTIFICATE_FIELDS = [
  'id', 'name', 'common_name', 'sans', 'environment', 'status', 'owner_id', 'issuer_id', 'profile_id', 'renewal_policy_id',
  'agent_id', 'serial_number', 'fingerprint_sha256', 'key_algorithm', 'key_size', 'not_before', 'expires_at', 'tags',
  'last_renewal_at', 'last_deployment_at', 'revoked_at', 'revocation_reason', 'created_at', 'updated_at',
] as const;

/**
 * `detail` adds what only the single-certificate read carries (not a list column):
 * `renewal_info`, the CA's renewal window (lifecycle/renewal-info.ts), null when none.
 */
export function serializeCertificate(row: CertificateRow, detail?: { renewal_info: unknown }): Record<string, unknown> & { id: string } {
  const out: Record<string, unknown> = {};
  for (const f of CERTIFICATE_FIELDS) out[f] = row[f] ?? null;
  out.sans = row.sans ?? [];
  out.tags = row.tags ?? {};
  out.environment = row.environment ?? '';
  if (detail) out.renewal_info = detail.renewal_info ?? null;
  return out as Record<string, unknown> & { id: string };
}

const idFilter = (column: string, what: string) => ({ description: `Only certificates with this ${what} (comma-separated for several)`, column });

export const certificateListSpec: ListSpec = {
  sortable: {
    // The seed's sort names: notAfter and expiresAt are the same column.
    not_after: 'expires_at',
    expires_at: 'expires_at',
    created_at: 'created_at',
    updated_at: 'updated_at',
    common_name: 'common_name',
    name: 'name',
    status: 'status',
    environment: 'environment',
  },
  defaultSort: '-created_at',
  nullable: ['expires_at'],
  filters: {
    status: { description: 'Certificate status', column: 'status', enum: CERTIFICATE_STATUSES },
    agent_id: idFilter('agent_id', 'agent'),
    profile_id: idFilter('profile_id', 'profile'),
    owner_id: idFilter('owner_id', 'owner'),
    issuer_id: idFilter('issuer_id', 'issuer'),
    renewal_policy_id: idFilter('renewal_policy_id', 'renewal policy'),
    environment: { description: 'Exact environment name', column: 'environment' },
    common_name: { description: 'Exact common name', column: 'common_name' },
    team_id: {
      description: 'Only certificates whose owner belongs to this team',
      // A subquery rather than a join keeps `id` unambiguous for the keyset window.
      apply: (qb, values) => { qb.whereIn('owner_id', (sub: Knex.QueryBuilder) => { sub.select('id').from('owners').whereIn('team_id', values); }); },
    },
  },
  timeFilters: {
    expires_before: { column: 'expires_at', op: '<' },
    expires_after: { column: 'expires_at', op: '>' },
    ...TIME_FILTERS,
  },
  fields: CERTIFICATE_FIELDS,
};

/**
 * Restricts a certificates query to what the principal may see with `permission`:
 * nothing to add for a global grant, else the profiles and issuers it was granted on.
 */
export function scopeCertificates(qb: Knex.QueryBuilder, principal: Principal, permission: Permission, prefix = ''): Knex.QueryBuilder {
  const scope = principal.scopeFilter(permission);
  if (!scope) return qb;
  const { profileIds, issuerIds } = scope;
  if (!profileIds.length && !issuerIds.length) return qb.whereRaw('false');
  return qb.where((w) => {
    if (profileIds.length) w.orWhereIn(`${prefix}profile_id`, profileIds);
    if (issuerIds.length) w.orWhereIn(`${prefix}issuer_id`, issuerIds);
  });
}
