import type { Knex } from 'knex';
import type { Permission } from '../../auth/permissions.js';
import type { Principal } from '../../auth/principal.js';
import { actorOf } from '../../audit/audit-log.js';
import { appError } from '../../errors.js';
import { CANCELLABLE_JOB_STATUSES, type JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { settleCancelledRenewals } from '../../lifecycle/cancelled-renewal.js';

/**
 * Loads a job the caller may see through any of `via`. A job inherits its
 * certificate's profile/issuer scope; a job without a certificate needs a global
 * grant. Invisible jobs are reported as missing.
 */
export async function loadVisibleJob(db: Knex | Knex.Transaction, id: string, principal: Principal, via: Permission[]): Promise<{ job: JobRow; allows: (p: Permission) => boolean }> {
  const row = (await db('jobs as j').leftJoin('managed_certificates as c', 'c.id', 'j.certificate_id').where('j.id', id)
    .first('j.*', 'c.profile_id as cert_profile_id', 'c.issuer_id as cert_issuer_id')) as (JobRow & { cert_profile_id: string | null; cert_issuer_id: string | null }) | undefined;
  if (!row) throw appError('NOT_FOUND', `Job ${id} not found`);
  const { cert_profile_id, cert_issuer_id, ...job } = row;
  const allows = (p: Permission) => (job.certificate_id ? principal.can(p, { profile_id: cert_profile_id, issuer_id: cert_issuer_id }) : principal.hasGlobal(p));
  if (!via.some(allows)) throw appError('NOT_FOUND', `Job ${id} not found`);
  return { job: job as JobRow, allows };
}

/**
 * Cancels a job that has not started (Pending, AwaitingCSR, AwaitingApproval)
 * through the queue, whose status check is part of the UPDATE: a worker claiming
 * the job at the same moment wins or loses cleanly. A certificate left
 * RenewalInProgress by a cancelled renewal goes back to the status its expiry
 * gives it, in the same transaction.
 */
export async function cancelJob(k: KernelServices, principal: Principal, id: string): Promise<JobRow> {
  const { allows } = await loadVisibleJob(k.db.knex, id, principal, ['job.read', 'job.cancel']);
  if (!allows('job.cancel')) throw appError('FORBIDDEN', 'Permission job.cancel is not granted for this job');
  const actor = actorOf(principal);
  return k.db.knex.transaction(async (trx) => {
    const res = await k.jobs.cancel(id, { actor, reason: `cancelled by ${principal.actor}`, trx });
    if (!res.ok) {
      if (res.reason === 'not_found') throw appError('NOT_FOUND', `Job ${id} not found`);
      throw appError('INVALID_STATE', `Job ${id} is ${res.job?.status ?? 'not cancellable'}; only ${CANCELLABLE_JOB_STATUSES.join(', ')} jobs can be cancelled`);
    }
    if (res.job.type === 'Renewal' && res.job.certificate_id) await settleCancelledRenewals(trx, k.audit, { now: new Date(), certificateIds: [res.job.certificate_id], actor });
    return res.job;
  });
}
