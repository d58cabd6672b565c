import type { Knex } from 'knex';
import { SYSTEM_ACTOR, type AuditLog } from '../audit/audit-log.js';
import type { JobRow } from '../jobs/job-states.js';
import { settleCancelledRenewals } from '../lifecycle/cancelled-renewal.js';
import type { ApprovalRow } from './approval-model.js';
import { appendDecisions, closeJobApprovals } from './approval-requests.js';

/**
 * What follows approval timeouts, in the reaper's transaction (the reaper has just
 * cancelled the jobs whose approval window closed): their requests become expired,
 * certificates left RenewalInProgress by those renewals settle back to their expiry
 * status, and profile edits nobody decided in time expire too. Returns the number of
 * requests expired.
 */
export async function expireApprovals(
  trx: Knex.Transaction,
  audit: Pick<AuditLog, 'append'>,
  timedOutJobs: Pick<JobRow, 'id' | 'type' | 'certificate_id'>[],
  now = new Date(),
): Promise<number> {
  const jobRequests = await closeJobApprovals(trx, audit, timedOutJobs.map((j) => j.id), 'expired', { reason: 'approval timed out' });
  const renewed = timedOutJobs.filter((j) => j.type === 'Renewal' && j.certificate_id).map((j) => j.certificate_id!);
  await settleCancelledRenewals(trx, audit, { now, certificateIds: [...new Set(renewed)] });
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
