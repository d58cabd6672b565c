import type { Knex } from 'knex';
import { SYSTEM_ACTOR, type AuditActor, type AuditLog } from '../audit/audit-log.js';
import type { JobRow } from '../jobs/job-states.js';
import { newApprovalId, type ApprovalRow, type ApprovalSubject, type ClosedApprovalStatus } from './approval-model.js';

type Audit = Pick<AuditLog, 'append'>;

/**
 * Opens one cert_issuance request per job held in AwaitingApproval, in the transaction
 * that creates the jobs: a gated job never exists without the request that lets an
 * operator decide it. The request expires with the job's approval window. It records
 * what is asked for (the certificate's names, issuer and profile), so the decision is
 * about fixed values: approving checks the certificate still matches them.
 */
export async function openIssuanceApprovals(trx: Knex.Transaction, audit: Audit, jobs: JobRow[], actor: AuditActor): Promise<ApprovalRow[]> {
  const gated = jobs.filter((j) => j.status === 'AwaitingApproval');
  if (!gated.length) return [];
  const subjects = await subjectsOf(trx, gated.map((j) => j.certificate_id).filter((c): c is string => Boolean(c)));
  const rows = gated.map((j) => ({
    id: newApprovalId(),
    kind: 'cert_issuance',
    job_id: j.id,
    certificate_id: j.certificate_id,
    subject: j.certificate_id && subjects.has(j.certificate_id) ? JSON.stringify(subjects.get(j.certificate_id)) : null,
    requested_by: j.requested_by ?? actor.actor,
    expires_at: j.approval_expires_at,
  }));
  const created: ApprovalRow[] = [];
  for (let i = 0; i < rows.length; i += 500) created.push(...((await trx('approval_requests').insert(rows.slice(i, i + 500)).returning('*')) as ApprovalRow[]));
  await audit.append(created.map((r) => ({
    category: 'lifecycle' as const, ...actor, action: 'approval_requested', resource_type: 'approval', resource_id: r.id,
    details: { kind: r.kind, job_id: r.job_id, certificate_id: r.certificate_id, subject: r.subject, expires_at: r.expires_at },
  })), trx);
  return created;
}

/** The issuance subject of each certificate as it is now (in the caller's transaction). */
export async function subjectsOf(trx: Knex | Knex.Transaction, certificateIds: string[]): Promise<Map<string, ApprovalSubject>> {
  const out = new Map<string, ApprovalSubject>();
  const ids = [...new Set(certificateIds)];
  for (let i = 0; i < ids.length; i += 1000) {
    const rows = (await trx('managed_certificates').whereIn('id', ids.slice(i, i + 1000)).select('id', 'common_name', 'sans', 'issuer_id', 'profile_id')) as
      (ApprovalSubject & { id: string; sans: string[] | string | null })[];
    for (const r of rows) {
      const sans = typeof r.sans === 'string' ? (JSON.parse(r.sans) as string[]) : (r.sans ?? []);
      out.set(r.id, { common_name: r.common_name, sans, issuer_id: r.issuer_id ?? null, profile_id: r.profile_id ?? null });
    }
  }
  return out;
}

/** True when two SAN lists name the same set. */
export function sameSans(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** True when two subjects ask for the same certificate. */
export function sameSubject(a: ApprovalSubject, b: ApprovalSubject): boolean {
  return a.common_name === b.common_name && a.issuer_id === b.issuer_id && a.profile_id === b.profile_id && sameSans(a.sans, b.sans);
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
