import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { recordNotifications, type NotificationEvent } from '../../notifications/notification-events.js';
import { leaseAgent } from './agent-deploy-outcome.js';

/** The reaper's view of a job it just took back from an expired lease. */
export interface ReapedJob {
  id: string;
  type: string;
  status: string;
  lease_owner: string | null;
  attempts: number;
}

/**
 * A Deployment job an agent leased and never answered fails for good in the reaper
 * once its attempts are spent. Nobody else would tell the owner (the agent's own
 * failure report never came), so the reaper records the DeploymentFailure here, in
 * its transaction. Same dedupe key as a reported final failure: one alert per job.
 */
export async function notifyAbandonedDeployments(trx: Knex.Transaction, log: Logger, reaped: readonly ReapedJob[]): Promise<number> {
  const failed = reaped.filter((j) => j.status === 'Failed' && j.type === 'Deployment' && leaseAgent(j.lease_owner) !== null);
  if (!failed.length) return 0;
  const rows = (await trx('jobs as j')
    .leftJoin('managed_certificates as c', 'c.id', 'j.certificate_id')
    .leftJoin('targets as t', 't.id', 'j.target_id')
    .whereIn('j.id', failed.map((j) => j.id))
    .select('j.id', 'j.certificate_id', 'j.target_id', 'c.common_name', 't.name as target_name')) as { id: string; certificate_id: string | null; target_id: string | null; common_name: string | null; target_name: string | null }[];
  const byId = new Map(failed.map((j) => [j.id, j]));
  const events: NotificationEvent[] = rows.map((r) => {
    const job = byId.get(r.id)!;
    const cn = r.common_name ?? r.certificate_id ?? 'a certificate';
    const target = r.target_name ?? r.target_id ?? 'its target';
    const agent = leaseAgent(job.lease_owner)!;
    return {
      type: 'DeploymentFailure', certificate_id: r.certificate_id, severity: 'critical', dedupe_key: `deployment-failure:${r.id}`,
      subject: `Deployment of ${cn} to ${target} failed`,
      message: `Deploying the certificate for ${cn} to ${target} failed after ${job.attempts} attempt${job.attempts === 1 ? '' : 's'}: agent ${agent} leased the job and did not report a result before its lease expired (is the agent running and reaching the control plane?).`,
    };
  });
  return recordNotifications({ log }, trx, events);
}
