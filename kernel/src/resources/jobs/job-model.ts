import type { Knex } from 'knex';
import type { Permission } from '../../auth/permissions.js';
import type { Principal } from '../../auth/principal.js';
import type { ListSpec } from '../../http/list-query.js';
import { JOB_STATUSES, JOB_TYPES, type JobRow } from '../../jobs/job-states.js';
import { TIME_FILTERS } from '../crud.js';
import { scopeCertificates } from '../certificates/certificate-model.js';

/** Lease bookkeeping (lease_owner, lease_expires_at) stays internal. */
export const JOB_FIELDS = [
  'id', 'type', 'status', 'certificate_id', 'target_id', 'agent_id', 'payload', 'result', 'attempts', 'max_attempts',
  'last_error', 'scheduled_at', 'approval_expires_at', 'requested_by', 'started_at', 'completed_at',
  'verification_status', 'verification_error', 'verified_at', 'created_at', 'updated_at',
] as const;

export function serializeJob(row: JobRow): Record<string, unknown> & { id: string } {
  const out: Record<string, unknown> = {};
  for (const f of JOB_FIELDS) out[f] = row[f] ?? null;
  out.payload = row.payload ?? {};
  return out as Record<string, unknown> & { id: string };
}

export const jobListSpec: ListSpec = {
  sortable: { created_at: 'created_at', updated_at: 'updated_at', status: 'status', type: 'type', scheduled_at: 'scheduled_at' },
  defaultSort: '-created_at',
  filters: {
    status: { description: 'Job status', column: 'status', enum: JOB_STATUSES },
    type: { description: 'Job type', column: 'type', enum: JOB_TYPES },
    certificate_id: { description: 'Jobs of this certificate', column: 'certificate_id' },
    agent_id: { description: 'Jobs routed to this agent', column: 'agent_id' },
    target_id: { description: 'Jobs for this deployment target', column: 'target_id' },
  },
  timeFilters: TIME_FILTERS,
  fields: JOB_FIELDS,
};

/**
 * Jobs inherit their certificate's scope: a principal holding `permission` only on
 * some profiles or issuers sees the jobs of those certificates, and no job that
 * belongs to no certificate.
 */
export function scopeJobs(qb: Knex.QueryBuilder, principal: Principal, permission: Permission): Knex.QueryBuilder {
  if (!principal.scopeFilter(permission)) return qb;
  return qb.whereIn('certificate_id', (sub: Knex.QueryBuilder) => {
    scopeCertificates(sub.select('id').from('managed_certificates'), principal, permission);
  });
}
