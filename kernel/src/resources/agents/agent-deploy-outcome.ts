import type { Knex } from 'knex';
import type { AuditActor } from '../../audit/audit-log.js';
import type { JobRow, JobStatus } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { recordNotification } from '../../notifications/notification-events.js';
import { settleVerification, verificationColumns } from './agent-verification.js';
import type { DeployResultRequest, VerificationReport } from './agent-wire.js';

type Services = Pick<KernelServices, 'db' | 'log' | 'audit' | 'jobs'>;

const AGENT_LEASE_PREFIX = 'agent:';

/** The lease owner an agent's Deployment jobs carry while it works on them. */
export const agentLeaseOwner = (agentId: string) => `${AGENT_LEASE_PREFIX}${agentId}`;

/** The agent a lease owner names (agentLeaseOwner), or null for a replica's lease. */
export const leaseAgent = (owner: string | null): string | null => (owner?.startsWith(AGENT_LEASE_PREFIX) ? owner.slice(AGENT_LEASE_PREFIX.length) : null);

/** Names for messages: the certificate's common name and the target's name. */
async function describe(trx: Knex.Transaction, job: JobRow): Promise<{ cn: string; target: string; fingerprint: string | null }> {
  const cert = job.certificate_id ? (await trx('managed_certificates').where({ id: job.certificate_id }).first('common_name')) as { common_name: string } | undefined : undefined;
  const target = job.target_id ? (await trx('targets').where({ id: job.target_id }).first('name')) as { name: string } | undefined : undefined;
  const versionId = typeof job.payload?.version_id === 'string' ? job.payload.version_id : null;
  const version = versionId ? (await trx('certificate_versions').where({ id: versionId }).first('fingerprint_sha256')) as { fingerprint_sha256: string } | undefined : undefined;
  return { cn: cert?.common_name ?? job.certificate_id ?? 'a certificate', target: target?.name ?? job.target_id ?? 'its target', fingerprint: version?.fingerprint_sha256 ?? null };
}

const jobRefs = (job: JobRow) => ({ certificate_id: job.certificate_id, target_id: job.target_id, version_id: job.payload?.version_id ?? null, attempts: job.attempts });

/**
 * A Deployment job the agent reports done: Completed with its result, the
 * certificate's last_deployment_at, the verification if one came with it, an audit
 * event and a DeploymentSuccess notification, all in `trx`. Fenced on the agent's
 * lease (owner and attempt): false, and nothing written, when the lease is gone.
 */
export async function completeDeployment(k: Services, trx: Knex.Transaction, job: JobRow, agentId: string, actor: AuditActor, report: DeployResultRequest): Promise<boolean> {
  const names = await describe(trx, job);
  const verification: VerificationReport | undefined = report.verification && settleVerification(report.verification, names.fingerprint);
  const result = { changed: report.changed ?? true, rolled_back: report.rolled_back ?? false, ...(verification ? { verification } : {}) };
  const verificationCols = verification ? verificationColumns(trx, verification) : { verification_status: 'pending' };
  const n = await trx('jobs').where({ id: job.id, status: 'Running', lease_owner: agentLeaseOwner(agentId), attempts: job.attempts }).update({
    status: 'Completed', result: JSON.stringify(result), completed_at: trx.fn.now(), lease_owner: null, lease_expires_at: null,
    last_error: null, updated_at: trx.fn.now(), ...verificationCols,
  });
  if (n !== 1) return false;
  if (job.certificate_id) await trx('managed_certificates').where({ id: job.certificate_id }).update({ last_deployment_at: trx.fn.now(), updated_at: trx.fn.now() });
  await k.audit.append({
    category: 'lifecycle', ...actor, action: 'deployment_completed', resource_type: 'job', resource_id: job.id,
    details: { ...jobRefs(job), changed: result.changed, verification_status: verification?.status ?? 'pending' },
  }, trx);
  await recordNotification(k, trx, {
    type: 'DeploymentSuccess', certificate_id: job.certificate_id, severity: 'info', dedupe_key: `deployment-success:${job.id}`,
    subject: `Certificate ${names.cn} deployed to ${names.target}`,
    message: `The certificate for ${names.cn} was deployed to ${names.target}${result.changed ? '' : ' (it already had these exact files; nothing was reloaded)'}`
      + (verification ? `; TLS verification: ${verification.status}.` : '.'),
  });
  return true;
}

/**
 * A failed attempt of an agent's Deployment job, with the queue's semantics (retry
 * with backoff until max_attempts, or Failed at once when `retryable` is false),
 * plus the deployment audit event and, on the final failure, a DeploymentFailure
 * notification, all in `trx`. Null, and nothing written, when the lease is gone.
 */
export async function failDeployment(
  k: Services, trx: Knex.Transaction, job: JobRow, agentId: string, actor: AuditActor,
  failure: { error: string; retryable: boolean; rolled_back?: boolean; verification?: VerificationReport },
): Promise<JobStatus | null> {
  const status = await k.jobs.fail(job, failure.error, { retryable: failure.retryable, leaseOwner: agentLeaseOwner(agentId), trx });
  if (!status) return null;
  const names = await describe(trx, job);
  const verification = failure.verification && settleVerification(failure.verification, names.fingerprint);
  if (verification) await trx('jobs').where({ id: job.id }).update(verificationColumns(trx, verification, { merge: true }));
  const final = status === 'Failed';
  await k.audit.append({
    category: 'lifecycle', ...actor, action: 'deployment_failed', resource_type: 'job', resource_id: job.id,
    details: { ...jobRefs(job), final, rolled_back: failure.rolled_back ?? false, error: failure.error.slice(0, 500) },
  }, trx);
  if (final) {
    await recordNotification(k, trx, {
      type: 'DeploymentFailure', certificate_id: job.certificate_id, severity: 'critical', dedupe_key: `deployment-failure:${job.id}`,
      subject: `Deployment of ${names.cn} to ${names.target} failed`,
      message: `Deploying the certificate for ${names.cn} to ${names.target} failed after ${job.attempts} attempt${job.attempts === 1 ? '' : 's'}: ${failure.error.slice(0, 500)}`
        + (failure.rolled_back ? ' The previous certificate was restored.' : ''),
    });
  }
  return status;
}
