import type { Knex } from 'knex';
import type { Principal } from '../auth/principal.js';
import type { ListSpec } from '../http/list-query.js';
import type { JsonSchema } from '../http/route.js';
import { TIME_FILTERS } from '../resources/crud.js';
import { scopeCertificates } from '../resources/certificates/certificate-model.js';
import { newId } from '../db/ids.js';

/** What a request gates: an Issuance/Renewal job, or an edit of an approval-tier profile. */
export const APPROVAL_KINDS = ['cert_issuance', 'profile_edit'] as const;
export type ApprovalKind = (typeof APPROVAL_KINDS)[number];

/** pending is the only state a request ever leaves. */
export const APPROVAL_STATUSES = ['pending', 'approved', 'rejected', 'expired', 'cancelled'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];
export type ClosedApprovalStatus = Exclude<ApprovalStatus, 'pending'>;

export interface ApprovalRow {
  id: string;
  kind: ApprovalKind;
  status: ApprovalStatus;
  job_id: string | null;
  certificate_id: string | null;
  profile_id: string | null;
  proposed_change: Record<string, unknown> | null;
  /** cert_issuance: what is being approved, fixed when the request opens. */
  subject: ApprovalSubject | null;
  requested_by: string;
  decided_by: string | null;
  decided_at: Date | null;
  reason: string | null;
  expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** The names, issuer and profile an issuance request asks to have issued. */
export interface ApprovalSubject {
  common_name: string;
  sans: string[];
  issuer_id: string | null;
  profile_id: string | null;
}

export const APPROVAL_FIELDS = [
  'id', 'kind', 'status', 'job_id', 'certificate_id', 'profile_id', 'proposed_change', 'subject', 'requested_by', 'decided_by',
  'decided_at', 'reason', 'expires_at', 'created_at', 'updated_at',
] as const;

/** Readable ids like the others (apr-3f9c1a2b7d4e5f60). */
export const newApprovalId = (): string => newId('approval');

export function serializeApproval(row: ApprovalRow): Record<string, unknown> & { id: string } {
  const out: Record<string, unknown> = {};
  for (const f of APPROVAL_FIELDS) out[f] = row[f] ?? null;
  return out as Record<string, unknown> & { id: string };
}

const ts = { type: ['string', 'null'], format: 'date-time' };
const str = { type: ['string', 'null'] };
export const approvalSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, kind: { type: 'string', enum: APPROVAL_KINDS }, status: { type: 'string', enum: APPROVAL_STATUSES },
    job_id: str, certificate_id: str, profile_id: str, proposed_change: { type: ['object', 'null'] },
    subject: {
      type: ['object', 'null'],
      properties: { common_name: { type: 'string' }, sans: { type: 'array', items: { type: 'string' } }, issuer_id: str, profile_id: str },
    },
    requested_by: { type: 'string' },
    decided_by: str, decided_at: ts, reason: str, expires_at: ts, created_at: ts, updated_at: ts,
  },
};

export const approvalListSpec: ListSpec = {
  sortable: { created_at: 'created_at', updated_at: 'updated_at', expires_at: 'expires_at', status: 'status', kind: 'kind' },
  defaultSort: '-created_at',
  nullable: ['expires_at'],
  filters: {
    status: { description: 'Request status', column: 'status', enum: APPROVAL_STATUSES },
    kind: { description: 'What the request gates', column: 'kind', enum: APPROVAL_KINDS },
    job_id: { description: 'The request gating this job', column: 'job_id' },
    certificate_id: { description: 'Requests for this certificate', column: 'certificate_id' },
    profile_id: { description: 'Edits proposed for this profile', column: 'profile_id' },
    requested_by: { description: 'Requests made by this actor', column: 'requested_by' },
  },
  timeFilters: TIME_FILTERS,
  fields: APPROVAL_FIELDS,
};

/**
 * A scoped principal sees issuance requests of certificates in its job.read scope and
 * edit requests of profiles in it; a request outside its scope reads as missing.
 */
export function scopeApprovals(qb: Knex.QueryBuilder, principal: Principal): Knex.QueryBuilder {
  const scope = principal.scopeFilter('job.read');
  if (!scope) return qb;
  return qb.where((w) => {
    w.where((i) => {
      i.where('kind', 'cert_issuance').whereIn('certificate_id', (sub: Knex.QueryBuilder) => {
        scopeCertificates(sub.select('id').from('managed_certificates'), principal, 'job.read');
      });
    });
    if (scope.profileIds.length) w.orWhere((p) => { p.where('kind', 'profile_edit').whereIn('profile_id', scope.profileIds); });
  });
}
