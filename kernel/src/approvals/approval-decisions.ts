import type { Knex } from 'knex';
import { actorOf, SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';
import { appError, type AppError } from '../errors.js';
import type { JobRow } from '../jobs/job-states.js';
import type { KernelServices } from '../kernel-services.js';
import { settleCancelledRenewals } from '../lifecycle/cancelled-renewal.js';
import { readyStatus } from '../lifecycle/issuance-jobs.js';
import { loadVisibleJob } from '../resources/jobs/job-actions.js';
import type { ApprovalRow } from './approval-model.js';
import { closeApprovalRequest, openIssuanceApprovals, sameSubject, subjectsOf } from './approval-requests.js';
import { sameKeyLineage } from '../auth/key-lineage.js';
import { applyApprovedProfileEdit } from './profile-edit-gate.js';

/*
 * Deciding approval requests. A decision and what it releases or stops move in one
 * transaction: approving an issuance request moves its job on (to AwaitingCSR or
 * Pending) and closes the request; rejecting it cancels the job for good. Approving a
 * profile edit applies the stored change. The requester never approves their own
 * request, nor does a key in the requester's lineage (one minted the other: the same
 * person could hold both), a request is approved only while its certificate still
 * matches what was asked for, a decided request is never decided again, and an expired one is settled as
 * expired (its job cancelled) instead of run.
 */

type Access = (p: Permission) => boolean;

/** What the principal may do with a request; an invisible one reads as missing. */
async function accessTo(db: Knex | Knex.Transaction, principal: Principal, req: ApprovalRow): Promise<Access> {
  let allows: Access;
  if (req.kind === 'profile_edit') {
    allows = (p) => principal.can(p, { profile_id: req.profile_id });
  } else {
    const cert = req.certificate_id
      ? ((await db('managed_certificates').where({ id: req.certificate_id }).first('profile_id', 'issuer_id')) as { profile_id: string | null; issuer_id: string | null } | undefined)
      : undefined;
    allows = (p) => (cert ? principal.can(p, cert) : principal.hasGlobal(p));
  }
  if (!allows('job.read') && !allows('job.approve')) throw appError('NOT_FOUND', `Approval request ${req.id} not found`);
  return allows;
}

/** Loads a request the principal may see (GET /approvals/:id). */
export async function loadVisibleApproval(db: Knex | Knex.Transaction, principal: Principal, id: string, opts: { lock?: boolean } = {}): Promise<{ req: ApprovalRow; allows: Access }> {
  const q = db('approval_requests').where({ id }).first();
  const req = (await (opts.lock ? q.forUpdate() : q)) as ApprovalRow | undefined;
  if (!req) throw appError('NOT_FOUND', `Approval request ${id} not found`);
  return { req, allows: await accessTo(db, principal, req) };
}

/** Locks a request for a decision and checks who may decide it and that it is still open. */
async function openForDecision(trx: Knex.Transaction, principal: Principal, id: string): Promise<ApprovalRow> {
  // Lock order job -> request, as wherever the queue moves a job and then closes its
  // request (the reaper, cancel), so a decision and a timeout cannot deadlock.
  const peek = (await trx('approval_requests').where({ id }).first('job_id')) as { job_id: string | null } | undefined;
  if (peek?.job_id) await trx('jobs').where({ id: peek.job_id }).forUpdate().first('id');
  const { req, allows } = await loadVisibleApproval(trx, principal, id, { lock: true });
  if (!allows('job.approve')) throw appError('FORBIDDEN', 'Permission job.approve is not granted for this request');
  // Deciding an edit is making it: the decider must be allowed to manage that profile too.
  if (req.kind === 'profile_edit' && !allows('profile.manage')) throw appError('FORBIDDEN', 'Deciding a profile edit needs profile.manage on that profile');
  if (req.status !== 'pending') throw appError('APPROVAL_DECIDED', `Approval request ${id} is already ${req.status}`);
  return req;
}

const reload = async (trx: Knex.Transaction, id: string) => (await trx('approval_requests').where({ id }).first()) as ApprovalRow;

/** A rejected renewal hands its certificate back to the status its expiry gives it. */
async function settleIfRenewal(k: KernelServices, trx: Knex.Transaction, job: Pick<JobRow, 'type' | 'certificate_id'>, principal: Principal) {
  if (job.type !== 'Renewal' || !job.certificate_id) return;
  await settleCancelledRenewals(trx, k.audit, { now: new Date(), certificateIds: [job.certificate_id], actor: actorOf(principal) });
}

/** Runs a decision; an outcome that must be committed and still reported as an error (expiry) comes back as `error`. */
async function decide(k: KernelServices, run: (trx: Knex.Transaction) => Promise<ApprovalRow | { error: AppError }>): Promise<ApprovalRow> {
  const out = await k.db.knex.transaction(run);
  if ('error' in out) throw out.error;
  return out;
}

export function approveRequest(k: KernelServices, principal: Principal, id: string, reason?: string): Promise<ApprovalRow> {
  const actor = actorOf(principal);
  return decide(k, async (trx) => {
    const req = await openForDecision(trx, principal, id);
    if (await sameKeyLineage(trx, req.requested_by, principal.actor)) {
      throw appError('SELF_APPROVAL', req.requested_by === principal.actor
        ? `Approval request ${id} was made by ${principal.actor}; someone else must approve it`
        : `Approval request ${id} was made by ${req.requested_by}, which minted or was minted by ${principal.actor}; a key outside that lineage must approve it`);
    }

    if (req.kind === 'profile_edit') {
      const expired = await trx('approval_requests').where({ id }).where('expires_at', '<=', trx.fn.now()).first('id');
      if (expired) {
        await closeApprovalRequest(trx, k.audit, id, 'expired', { reason: 'approval timed out' });
        return { error: appError('APPROVAL_EXPIRED', `Approval request ${id} expired; the profile edit was not applied`) };
      }
      await applyApprovedProfileEdit(k, trx, req, actor);
      return (await closeApprovalRequest(trx, k.audit, id, 'approved', { actor, reason }))!;
    }

    const job = (await trx('jobs').where({ id: req.job_id }).first()) as JobRow | undefined;
    await assertSubjectUnchanged(trx, req);
    const cert = job?.certificate_id ? ((await trx('managed_certificates').where({ id: job.certificate_id }).first('agent_id')) as { agent_id: string | null } | undefined) : undefined;
    const next = readyStatus(k.config, { agent_id: cert?.agent_id ?? null });
    // The queue moves the job and closes this request as approved, in this transaction.
    const res = await k.jobs.approve(req.job_id!, { actor, reason, next, agent_id: next === 'AwaitingCSR' ? cert!.agent_id : null, trx });
    if (res.ok) return reload(trx, id);
    if (res.reason === 'same_actor') throw appError('SELF_APPROVAL', `Job ${req.job_id} was requested by ${principal.actor}; someone else must approve it`);
    if (res.reason === 'approval_expired') {
      // The queue has cancelled the job, expired the request and settled a renewing certificate; that must be committed.
      return { error: appError('APPROVAL_EXPIRED', `Approval request ${id} expired; job ${req.job_id} was cancelled and will not run`) };
    }
    return closeStale(k, trx, req, res.job);
  });
}

/**
 * The certificate must still ask for what the request recorded: the approver decided on
 * those names, issuer and profile, not on whatever the certificate says later.
 */
async function assertSubjectUnchanged(trx: Knex.Transaction, req: ApprovalRow): Promise<void> {
  // No lock on the certificate: while the request is pending its job is open, and the
  // certificate's write path refuses name, issuer and profile edits then.
  if (!req.certificate_id) return;
  const now = (await subjectsOf(trx, [req.certificate_id])).get(req.certificate_id);
  if (!now) return;
  if (!req.subject || !sameSubject(req.subject, now)) {
    throw appError('APPROVAL_SUBJECT_CHANGED', `Certificate ${req.certificate_id} no longer matches what approval request ${req.id} was opened for; reject it, or cancel job ${req.job_id} and ask again`);
  }
}

export function rejectRequest(k: KernelServices, principal: Principal, id: string, reason: string): Promise<ApprovalRow> {
  const actor = actorOf(principal);
  return decide(k, async (trx) => {
    const req = await openForDecision(trx, principal, id);
    if (req.kind === 'profile_edit') return (await closeApprovalRequest(trx, k.audit, id, 'rejected', { actor, reason }))!;
    // The queue cancels the job and closes this request as rejected, in this transaction.
    const res = await k.jobs.reject(req.job_id!, { actor, reason, trx });
    if (res.ok) {
      await settleIfRenewal(k, trx, res.job, principal);
      return reload(trx, id);
    }
    return closeStale(k, trx, req, res.job);
  });
}

/** The job left AwaitingApproval some other way: its request has nothing left to gate. */
async function closeStale(k: KernelServices, trx: Knex.Transaction, req: ApprovalRow, job: JobRow | undefined): Promise<{ error: AppError }> {
  const state = job?.status ?? 'gone';
  await closeApprovalRequest(trx, k.audit, req.id, 'cancelled', { reason: `job is ${state}` });
  return { error: appError('APPROVAL_DECIDED', `Job ${req.job_id} is ${state}; approval request ${req.id} was cancelled`) };
}

/**
 * The request gating a job (for /jobs/:id/approve|reject). A job held for approval
 * before requests existed gets its request now, so both routes decide the same way.
 */
export async function approvalIdForJob(k: KernelServices, principal: Principal, jobId: string): Promise<string> {
  const { job } = await loadVisibleJob(k.db.knex, jobId, principal, ['job.read', 'job.approve']);
  const requests = k.db.knex('approval_requests').where({ job_id: jobId });
  const pending = (await requests.clone().where({ status: 'pending' }).first('id')) as { id: string } | undefined;
  if (pending) return pending.id;
  if (job.status === 'AwaitingApproval') return (await k.db.knex.transaction((trx) => openIssuanceApprovals(trx, k.audit, [job], SYSTEM_ACTOR)))[0].id;
  // Deciding a decided job again answers like deciding its request again.
  const last = (await requests.clone().orderBy('created_at', 'desc').first('id')) as { id: string } | undefined;
  if (last) return last.id;
  throw appError('INVALID_STATE', `Job ${jobId} is ${job.status}; only AwaitingApproval jobs can be approved or rejected`);
}
