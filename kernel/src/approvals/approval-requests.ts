import type { Knex } from 'knex';
import { SYSTEM_ACTOR, type AuditActor, type AuditLog } from '../audit/audit-log.js';
import type { JobRow } from '../jobs/job-states.js';
import { newApprovalId, type ApprovalRow, type ClosedApprovalStatus } from './approval-model.js';

type Audit = Pick<AuditLog, 'append'>;

/**
 * Opens one cert_issuance request per job held in AwaitingApproval, in the transaction
 * that creates the jobs: a gated job never exists without the request that lets an
 * operator decide it. The request expires with the job's approval window.
 */
export async function openIssuanceApprovals(trx: Knex.Transaction, audit: Audit, jobs: JobRow[], actor: AuditActor): Promise<ApprovalRow[]> {
  const gated = jobs.filter((j) => j.status === 'AwaitingApproval');
  if (!gated.length) return [];
  const rows = gated.map((j) => ({
    id: newApprovalId(),
    kind: 'cert_issuance',
    job_id: j.id,
    certificate_id: j.certificate_id,
    requested_by: j.requested_by ?? actor.actor,
    expires_at: j.approval_expires_at,
  }));
  const created: ApprovalRow[] = [];
  for (let i = 0; i < rows.length; i += 500) created.push(...((await trx('approval_requests').insert(rows.slice(i, i + 500)).returning('*')) as ApprovalRow[]));
  await audit.append(created.map((r) => ({
    category: 'lifecycle' as const, ...actor, action: 'approval_requested', resource_type: 'approval', resource_id: r.id,
    details: { kind: r.kind, job_id: r.job_id, certificate_id: r.certificate_id, expires_at: r.expires_at },
  })), trx);
  return created;
}

/**
 * Closes the pending requests of jobs that just left AwaitingApproval (approved,
 * rejected, cancelled or timed out), with an audit event each. The job queue calls
 * this wherever such a job moves, so a request always ends with its job. Only
 * pending rows are touched; the table's trigger refuses any change to a decided one.
 */
export async function closeJobApprovals(
  trx: Knex.Transaction,
  audit: Audit,
  jobIds: string[],
  to: ClosedApprovalStatus,
  decision: { actor?: AuditActor; reason?: string | null } = {},
): Promise<ApprovalRow[]> {
  if (!jobIds.length) return [];
  return close(trx, audit, (q) => q.whereIn('job_id', jobIds), to, decision);
}

/** Closes one pending request by id (a profile edit, or a request whose job went away); null if it was not pending. */
export async function closeApprovalRequest(
  trx: Knex.Transaction,
  audit: Audit,
  id: string,
  to: ClosedApprovalStatus,
  decision: { actor?: AuditActor; reason?: string | null } = {},
): Promise<ApprovalRow | null> {
  const [closed] = await close(trx, audit, (q) => q.where({ id }), to, decision);
  return closed ?? null;
}

async function close(
  trx: Knex.Transaction,
  audit: Audit,
  which: (q: Knex.QueryBuilder) => Knex.QueryBuilder,
  to: ClosedApprovalStatus,
  decision: { actor?: AuditActor; reason?: string | null },
): Promise<ApprovalRow[]> {
  const actor = decision.actor ?? SYSTEM_ACTOR;
  const closed = (await which(trx('approval_requests')).where({ status: 'pending' })
    .update({ status: to, decided_by: actor.actor, decided_at: trx.fn.now(), reason: decision.reason ?? null, updated_at: trx.fn.now() })
    .returning('*')) as ApprovalRow[];
  await appendDecisions(trx, audit, closed, actor);
  return closed;
}

/** One audit event per closed request: approval_approved, approval_rejected, approval_expired, approval_cancelled. */
export async function appendDecisions(trx: Knex.Transaction, audit: Audit, closed: ApprovalRow[], actor: AuditActor): Promise<void> {
  if (!closed.length) return;
  await audit.append(closed.map((r) => ({
    category: 'lifecycle' as const, ...actor, action: `approval_${r.status}`, resource_type: 'approval', resource_id: r.id,
    details: { kind: r.kind, job_id: r.job_id, certificate_id: r.certificate_id, profile_id: r.profile_id, requested_by: r.requested_by, reason: r.reason },
  })), trx);
}
