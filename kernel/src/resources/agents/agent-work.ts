import type { Knex } from 'knex';
import { SYSTEM_ACTOR } from '../../audit/audit-log.js';
import { markAuditResource, type RouteDef } from '../../http/route.js';
import type { JobRow } from '../../jobs/job-states.js';
import { rowsOf } from '../../db/raw-rows.js';
import type { KernelServices } from '../../kernel-services.js';
import { ISSUING_JOB_TYPES } from '../../lifecycle/issuance-jobs.js';
import { agentKeyAlgorithm, type ProfileKeyRule } from './agent-key-spec.js';
import { buildDeployItem, UndeliverableDeployment } from './agent-deploy-item.js';
import { agentLeaseOwner, failDeployment } from './agent-deploy-outcome.js';
import { loadOwnAgent, recordSignOfLife } from './agent-presence.js';
import type { AgentWorkResponse, CsrWorkItem, DeployWorkItem } from './agent-wire.js';

/**
 * Deployment jobs leased per poll. The agent deploys one at a time (each may take
 * minutes: validate, reload, a verify window), so a lease taken for a job far down a
 * long batch would run out before the agent got to it. Two keeps every lease close to
 * its work; a full batch answers poll_after_ms 0, so the agent asks again at once and
 * throughput holds.
 */
export const DEPLOY_BATCH = 2;
/** CSR requests listed per poll (they stay listed until the CSR arrives, so nothing is lost by the cap). */
const CSR_BATCH = 50;
/** The usual poll interval hint; 0 when a full batch suggests more work is waiting. */
export const POLL_AFTER_MS = 10_000;

/** The agent's CSR requests, oldest first (one query for both poll paths); its parameters are csrArgs(agentId). */
const CSR_SQL = `SELECT j.id, j.type, j.certificate_id, c.common_name, c.sans, j.created_at, p.allowed_key_algorithms, i.type AS issuer_type
   FROM jobs j JOIN managed_certificates c ON c.id = j.certificate_id
   LEFT JOIN certificate_profiles p ON p.id = c.profile_id LEFT JOIN issuers i ON i.id = c.issuer_id
  WHERE j.agent_id = ? AND j.status = 'AwaitingCSR' AND j.type IN (${ISSUING_JOB_TYPES.map(() => '?').join(', ')})
  ORDER BY j.created_at, j.id LIMIT ?`;
const csrArgs = (agentId: string) => [agentId, ...ISSUING_JOB_TYPES, CSR_BATCH];

async function csrRequests(trx: Knex.Transaction, agentId: string): Promise<CsrWorkItem[]> {
  return rowsOf<CsrRow>(await trx.raw(CSR_SQL, csrArgs(agentId))).map(toCsrItem);
}

/**
 * Leases this agent's runnable Deployment jobs with the queue's own claim (owner
 * `agent:<id>`, in the poll's transaction; the kernel's reaper takes a lease back
 * when it runs out), each with its certificate's newest version.
 */
async function leaseDeployments(k: Pick<KernelServices, 'jobs'>, trx: Knex.Transaction, agentId: string): Promise<LeasedJob[]> {
  const jobs = await k.jobs.claimFor({ limit: DEPLOY_BATCH, types: ['Deployment'], owner: agentLeaseOwner(agentId), agentId, trx });
  const certIds = [...new Set(jobs.map((j) => j.certificate_id).filter((id): id is string => Boolean(id)))];
  const newest = new Map<string, string>();
  if (certIds.length) {
    const rows = rowsOf<{ certificate_id: string; id: string }>(await trx.raw(
      `SELECT DISTINCT ON (certificate_id) certificate_id, id FROM certificate_versions
        WHERE certificate_id = ANY(?) ORDER BY certificate_id, created_at DESC, id DESC`, [certIds]));
    for (const r of rows) newest.set(r.certificate_id, r.id);
  }
  return jobs.map((j) => ({ ...j, newest_version_id: (j.certificate_id && newest.get(j.certificate_id)) || null }));
}

type LeasedJob = JobRow & { newest_version_id: string | null };

/**
 * A deployment of a version that is no longer the certificate's newest (it went back
 * to Pending for a retry after a newer version was issued, which cancels only the
 * Pending ones): cancelled instead of handed out, so the old version is never deployed
 * over the new one (the newer version has its own deployment job).
 */
async function cancelSuperseded(k: KernelServices, trx: Knex.Transaction, job: LeasedJob): Promise<boolean> {
  const version = job.payload?.version_id;
  if (!job.newest_version_id || version === job.newest_version_id) return false;
  const n = await trx('jobs').where({ id: job.id, status: 'Running' })
    .update({ status: 'Cancelled', last_error: `superseded by version ${job.newest_version_id}`, lease_owner: null, lease_expires_at: null, completed_at: trx.fn.now(), updated_at: trx.fn.now() });
  if (n === 1) {
    await k.audit.append({
      category: 'lifecycle', ...SYSTEM_ACTOR, action: 'job_cancelled', resource_type: 'job', resource_id: job.id,
      details: { type: 'Deployment', reason: 'superseded', certificate_id: job.certificate_id, version_id: version ?? null, superseded_by_version: job.newest_version_id },
    }, trx);
  }
  return true;
}

type CsrRow = {
  id: string; type: 'Issuance' | 'Renewal'; certificate_id: string; common_name: string; sans: string[] | null;
  allowed_key_algorithms: ProfileKeyRule[] | string | null; issuer_type: string | null;
};
const toCsrItem = (r: CsrRow): CsrWorkItem => ({
  kind: 'csr', job_id: r.id, job_type: r.type, certificate_id: r.certificate_id, common_name: r.common_name, sans: r.sans ?? [],
  key_algorithm: agentKeyAlgorithm(r.allowed_key_algorithms, r.issuer_type),
});

/**
 * The usual poll, in one statement and no explicit transaction: an Online agent
 * polled by its own key, with no deployment due. Stamps the sign of life (status
 * unchanged, so nothing to audit), lists the CSR requests and says whether a
 * deployment is due. Null when the poll needs the full path (someone else's key
 * or no such agent, a status to change, deployments to lease): that path then
 * decides everything again under the agent's row lock.
 */
async function quickPoll(db: Knex, agentId: string, keyId: string | null): Promise<CsrWorkItem[] | null> {
  if (!keyId) return null;
  const [row] = rowsOf<{ alive: boolean; due: boolean; csr: CsrRow[] | string | null }>(await db.raw(
    `WITH me AS (
       UPDATE agents SET last_heartbeat_at = now(), updated_at = now()
        WHERE id = ? AND api_key_id = ? AND status = 'Online'
       RETURNING id)
     SELECT EXISTS (SELECT 1 FROM me) AS alive,
            EXISTS (SELECT 1 FROM jobs WHERE status = 'Pending' AND type = 'Deployment' AND agent_id = ? AND scheduled_at <= now()) AS due,
            (SELECT json_agg(x ORDER BY x.created_at, x.id) FROM (${CSR_SQL}) x) AS csr`,
    [agentId, keyId, agentId, ...csrArgs(agentId)],
  ));
  if (!row?.alive || row.due) return null;
  const csr = (typeof row.csr === 'string' ? JSON.parse(row.csr) : row.csr ?? []) as CsrRow[];
  return csr.map(toCsrItem);
}

/**
 * GET /api/v1/agents/{id}/work: CSR requests routed to the agent and newly leased
 * deployments, in one transaction with the poll's sign of life. A leased job whose
 * data no longer hold together fails for good here instead of being handed out.
 */
export function agentWorkRoute(k: KernelServices): RouteDef {
  return {
    method: 'GET', path: '/api/v1/agents/:id/work', access: 'agent.operate', tag: 'agents',
    summary: 'An agent polls for its work: CSR requests and deployments (leased to it); only that agent\'s own key may call it',
    handler: async (ctx, { params, principal }): Promise<AgentWorkResponse> => {
      markAuditResource(ctx, 'agent', params.id);
      const quick = await quickPoll(k.db.knex, params.id, principal?.keyId ?? null);
      if (quick) return { data: quick, poll_after_ms: POLL_AFTER_MS };
      const { data, leased } = await k.db.knex.transaction(async (trx) => {
        const agent = await loadOwnAgent(trx, principal, params.id, { lock: true });
        await recordSignOfLife(k, trx, agent, principal);
        // A disabled agent stays alive in the inventory but is given nothing to do.
        if (agent.status === 'Disabled') return { data: [], leased: 0 };
        const csr = await csrRequests(trx, params.id);
        const jobs = await leaseDeployments(k, trx, params.id);
        const deploys: DeployWorkItem[] = [];
        for (const leasedJob of jobs) {
          if (await cancelSuperseded(k, trx, leasedJob)) continue;
          const { newest_version_id: _newest, ...job } = leasedJob;
          try {
            deploys.push(await buildDeployItem(k, trx, job, params.id));
          } catch (err) {
            if (!(err instanceof UndeliverableDeployment)) throw err;
            await failDeployment(k, trx, job, params.id, SYSTEM_ACTOR, { error: err.message, retryable: false });
          }
        }
        return { data: [...csr, ...deploys], leased: jobs.length };
      });
      return { data, poll_after_ms: leased >= DEPLOY_BATCH ? 0 : POLL_AFTER_MS };
    },
  };
}
