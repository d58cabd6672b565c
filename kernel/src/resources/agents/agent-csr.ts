import { actorOf } from '../../audit/audit-log.js';
import { CryptoError, type CsrInfo } from '../../crypto/crypto-types.js';
import { appError } from '../../errors.js';
import { markAuditResource, type RouteDef } from '../../http/route.js';
import type { JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { ISSUING_JOB_TYPES } from '../../lifecycle/issuance-jobs.js';
import { loadOwnAgent } from './agent-presence.js';
import type { AgentCsrRequest } from './agent-wire.js';

const csrBody = {
  type: 'object',
  additionalProperties: false,
  required: ['job_id', 'csr_pem'],
  properties: {
    job_id: { type: 'string', minLength: 1, maxLength: 64 },
    csr_pem: { type: 'string', minLength: 1, maxLength: 32_768 },
  },
};

/** One spelling of a PEM, so a re-sent CSR compares equal to the stored one. */
const canonicalPem = (pem: string) => `${pem.replace(/\r\n/g, '\n').trim()}\n`;

async function verifiedCsr(k: Pick<KernelServices, 'crypto'>, pem: string): Promise<CsrInfo> {
  let info: CsrInfo;
  try {
    info = await k.crypto.verifyCsr(pem);
  } catch (err) {
    if (err instanceof CryptoError && (err.code === 'csr_invalid' || err.code === 'bad_request')) throw appError('CSR_INVALID', `The CSR was refused: ${err.message}`);
    throw err;
  }
  if (!info.valid) throw appError('CSR_INVALID', `The CSR was refused: ${info.reason ?? 'its signature does not verify'}`);
  return info;
}

/** 202 for a job that already has exactly this CSR (an agent re-sending after a lost answer); 409 otherwise. */
function alreadyAnswered(job: JobRow, pem: string): { job_id: string; status: string } {
  if (job.payload?.csr_pem === pem) return { job_id: job.id, status: job.status };
  if (typeof job.payload?.csr_pem === 'string') throw appError('INVALID_STATE', `Job ${job.id} already has a different CSR`);
  throw appError('INVALID_STATE', `Job ${job.id} is ${job.status}; it is not waiting for a CSR`);
}

/**
 * POST /api/v1/agents/{id}/csr: the agent's CSR for an AwaitingCSR Issuance or
 * Renewal job routed to it. The CSR must parse and its signature verify (checked on
 * the crypto pool before anything is written); it is stored in the job's payload and
 * the job becomes runnable. The issuance handler enforces the profile on it later.
 */
export function agentCsrRoute(k: KernelServices): RouteDef {
  return {
    method: 'POST', path: '/api/v1/agents/:id/csr', access: 'agent.operate', tag: 'agents', body: csrBody, response: { status: 202 },
    summary: 'An agent submits the CSR for an issuance or renewal job waiting for it',
    handler: async (ctx, { params, body, principal }) => {
      const { job_id: jobId, csr_pem: raw } = body as AgentCsrRequest;
      markAuditResource(ctx, 'job', jobId);
      await loadOwnAgent(k.db.knex, principal, params.id);
      const pem = canonicalPem(raw);
      const mine = (job: JobRow | undefined): job is JobRow =>
        Boolean(job && job.agent_id === params.id && (ISSUING_JOB_TYPES as readonly string[]).includes(job.type));
      const before = (await k.db.knex('jobs').where({ id: jobId }).first()) as JobRow | undefined;
      if (!mine(before)) throw appError('NOT_FOUND', `Job ${jobId} is not a CSR request for agent ${params.id}`);
      if (before.status !== 'AwaitingCSR') return alreadyAnswered(before, pem);
      // Verified before the transaction: no row lock is held while the pool works.
      const info = await verifiedCsr(k, pem);
      const outcome = await k.db.knex.transaction(async (trx) => {
        const job = (await trx('jobs').where({ id: jobId }).forUpdate().first()) as JobRow | undefined;
        if (!mine(job)) throw appError('NOT_FOUND', `Job ${jobId} is not a CSR request for agent ${params.id}`);
        if (job.status !== 'AwaitingCSR') return alreadyAnswered(job, pem);
        await trx('jobs').where({ id: jobId }).update({
          status: 'Pending', payload: JSON.stringify({ ...(job.payload ?? {}), csr_pem: pem }),
          scheduled_at: trx.fn.now(), last_error: null, updated_at: trx.fn.now(),
        });
        await k.audit.append({
          category: 'lifecycle', ...actorOf(principal), action: 'csr_submitted', resource_type: 'job', resource_id: jobId,
          details: { agent_id: params.id, certificate_id: job.certificate_id, type: job.type, subject: info.subject, sans: info.sans, key_algorithm: info.publicKeyAlgorithm, key_size: info.keySize, named_curve: info.namedCurve ?? null },
        }, trx);
        return { job_id: jobId, status: 'Pending' };
      });
      // The job is runnable now: ask the processor to look (what enqueue's wake does for new jobs).
      if (outcome.status === 'Pending' && k.config.schedulerEnabled && !k.isDraining()) void k.scheduler.trigger('job-processor').catch(() => {});
      return outcome;
    },
  };
}
