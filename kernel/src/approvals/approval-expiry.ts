import type { Knex } from 'knex';
import { SYSTEM_ACTOR, type AuditLog } from '../audit/audit-log.js';
import type { JobRow } from '../jobs/job-states.js';
import { settleCancelledRenewals } from '../lifecycle/cancelled-renewal.js';
import type { ApprovalRow } from './approval-model.js';
import { appendDecisions, closeJobApprovals } from './approval-requests.js';

/**
 * What follows the cancelling of jobs whose approval window closed, in the job
 * queue's transaction (the reaper's, or an approval that came too late): their
 * requests become expired, and certificates left RenewalInProgress by those renewals
 * settle back to their expiry status. Returns the expired requests.
 */
export async function expireJobApprovals(
  trx: Knex.Transaction,
  audit: Pick<AuditLog, 'append'>,
  timedOutJobs: Pick<JobRow, 'id' | 'type' | 'certificate_id'>[],
  now = new Date(),
): Promise<ApprovalRow[]> {
  const closed = await closeJobApprovals(trx, audit, timedOutJobs.map((j) => j.id), 'expired', { reason: 'approval timed out' });
  const renewed = timedOutJobs.filter((j) => j.type === 'Renewal' && j.certificate_id).map((j) => j.certificate_id!);
  await settleCancelledRenewals(trx, audit, { now, certificateIds: [...new Set(renewed)] });
  return closed;
}

/**
 * What follows approval timeouts, in the reaper's transaction: the timed-out jobs'
 * requests expire (expireJobApprovals), and profile edits nobody decided in time
 * expire too. Returns the number of requests expired.
 */
export async function expireApprovals(
  trx: Knex.Transaction,
  audit: Pick<AuditLog, 'append'>,
  timedOutJobs: Pick<JobRow, 'id' | 'type' | 'certificate_id'>[],
  now = new Date(),
): Promise<number> {
  const jobRequests = await expireJobApprovals(trx, audit, timedOutJobs, now);
  // SKIP LOCKED: a request being decided right now is that decision's to settle.
  const edits = (await trx('approval_requests')
    .whereIn('id', (sub: Knex.QueryBuilder) => {
      sub.select('id').from('approval_requests').where({ kind: 'profile_edit', status: 'pending' }).where('expires_at', '<', trx.fn.now()).forUpdate().skipLocked();
    })
    .update({ status: 'expired', decided_by: SYSTEM_ACTOR.actor, decided_at: trx.fn.now(), reason: 'approval timed out', updated_at: trx.fn.now() })
    .returning('*')) as ApprovalRow[];
  await appendDecisions(trx, audit, edits, SYSTEM_ACTOR);
  return jobRequests.length + edits.length;
}
