import { actorOf } from '../../audit/audit-log.js';
import { appError } from '../../errors.js';
import { markAuditResource, type RouteDef } from '../../http/route.js';
import type { JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { loadVisibleJob } from '../jobs/job-actions.js';
import { agentLeaseOwner, completeDeployment, failDeployment } from './agent-deploy-outcome.js';
import { loadOwnAgent } from './agent-presence.js';
import { settleVerification, verificationColumns, verificationReportSchema, verificationView } from './agent-verification.js';
import type { DeployResultRequest, VerificationReport } from './agent-wire.js';

const resultBody = {
  type: 'object',
  additionalProperties: false,
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['Completed', 'Failed'] },
    changed: { type: 'boolean' },
    rolled_back: { type: 'boolean' },
    error: { type: 'string', maxLength: 4000 },
    verification: verificationReportSchema,
    attempt: { type: 'integer', minimum: 1 },
  },
};

const notMine = (jobId: string) => appError('NOT_FOUND', `Job ${jobId} is not a deployment of this agent`);

/**
 * The agent's answers about deployments: the outcome of a leased Deployment job, and
 * the post-deployment TLS verification (which never changes the job's status: it is
 * recorded, and a mismatch is the agent's cue to roll back). Plus the operators' view
 * of a job's verification.
 */
export function agentResultRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  return [
    {
      method: 'POST', path: '/api/v1/agents/:id/jobs/:job_id/result', access: 'agent.operate', tag: 'agents', body: resultBody,
      summary: 'An agent reports the outcome of a deployment leased to it; a result for a lease it no longer holds is refused (409)',
      handler: async (ctx, { params, body, principal }) => {
        const report = body as DeployResultRequest;
        markAuditResource(ctx, 'job', params.job_id);
        await loadOwnAgent(knex, principal, params.id);
        return knex.transaction(async (trx) => {
          const job = (await trx('jobs').where({ id: params.job_id }).forUpdate().first()) as JobRow | undefined;
          if (!job || job.agent_id !== params.id || job.type !== 'Deployment') throw notMine(params.job_id);
          const held = job.status === 'Running' && job.lease_owner === agentLeaseOwner(params.id) && (report.attempt === undefined || report.attempt === job.attempts);
          if (!held) throw appError('LEASE_LOST', `Job ${job.id} is ${job.status}${job.status === 'Running' ? ' under a newer lease' : ''}; this result was not recorded`);
          const actor = actorOf(principal);
          if (report.status === 'Completed') {
            if (!(await completeDeployment(k, trx, job, params.id, actor, report))) throw appError('LEASE_LOST');
            return { job_id: job.id, status: 'Completed' };
          }
          const status = await failDeployment(k, trx, job, params.id, actor, {
            error: report.error?.trim() || 'the agent reported a failed deployment without a reason', retryable: true,
            rolled_back: report.rolled_back, verification: report.verification,
          });
          if (!status) throw appError('LEASE_LOST');
          return { job_id: job.id, status };
        });
      },
    },
    {
      method: 'POST', path: '/api/v1/jobs/:id/verify', access: 'agent.operate', tag: 'jobs', body: verificationReportSchema,
      summary: 'The deploying agent reports its post-deployment TLS verification (fingerprint of the served certificate)',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'job', params.id);
        return knex.transaction(async (trx) => {
          const job = (await trx('jobs as j').join('agents as a', 'a.id', 'j.agent_id').where('j.id', params.id).forUpdate('j')
            .first('j.*', 'a.api_key_id as agent_key_id')) as (JobRow & { agent_key_id: string | null }) | undefined;
          // Only the key of the agent the deployment belongs to; anyone else learns nothing about the job.
          if (!job || job.type !== 'Deployment' || !principal.keyId || job.agent_key_id !== principal.keyId) throw notMine(params.id);
          if (job.status !== 'Completed' && !(job.status === 'Running' && job.lease_owner === agentLeaseOwner(job.agent_id!))) {
            throw appError('INVALID_STATE', `Job ${job.id} is ${job.status}; only a deployment in progress or completed can be verified`);
          }
          const versionId = typeof job.payload?.version_id === 'string' ? job.payload.version_id : null;
          const version = versionId ? (await trx('certificate_versions').where({ id: versionId }).first('fingerprint_sha256')) as { fingerprint_sha256: string } | undefined : undefined;
          const report = settleVerification(body as VerificationReport, version?.fingerprint_sha256 ?? null);
          const [updated] = (await trx('jobs').where({ id: job.id }).update({ ...verificationColumns(trx, report, { merge: true }), updated_at: trx.fn.now() }).returning('*')) as JobRow[];
          await k.audit.append({
            category: 'lifecycle', ...actorOf(principal), action: 'deployment_verified', resource_type: 'job', resource_id: job.id,
            details: { certificate_id: job.certificate_id, target_id: job.target_id, status: report.status, endpoint: report.endpoint ?? null },
          }, trx);
          return verificationView(updated);
        });
      },
    },
    {
      method: 'GET', path: '/api/v1/jobs/:id/verification', access: 'job.read', tag: 'jobs',
      summary: 'The post-deployment TLS verification of a deployment job (pending until the agent reports one)',
      handler: async (ctx, { params, principal }) => {
        markAuditResource(ctx, 'job', params.id);
        const { job } = await loadVisibleJob(knex, params.id, principal, ['job.read']);
        if (job.type !== 'Deployment') throw appError('NOT_FOUND', `Job ${params.id} is not a deployment job`);
        return verificationView(job);
      },
    },
  ];
}
