import type { Knex } from 'knex';
import type { KernelConfig } from '../config.js';
import type { NewJob } from '../jobs/job-queue.js';
import { OPEN_JOB_STATUSES, type JobRow, type JobStatus } from '../jobs/job-states.js';
import type { KernelServices } from '../kernel-services.js';
import type { AuditActor } from '../audit/audit-log.js';
import { openIssuanceApprovals } from '../approvals/approval-requests.js';

export interface CertificateForJob {
  id: string;
  agent_id: string | null;
  profile_id: string | null;
}


/** Issuance and Renewal jobs: the ones that produce a new certificate version. */
export const ISSUING_JOB_TYPES = ['Issuance', 'Renewal'] as const;

/**
 * Where an issuing job waits once nothing (no approval) holds it: for the agent's
 * CSR when keys are made on agents and the certificate has one, else for a worker.
 * The approval flow asks this again when an operator approves.
 */
export function readyStatus(config: Pick<KernelConfig, 'keygenMode'>, cert: Pick<CertificateForJob, 'agent_id'>): Extract<JobStatus, 'AwaitingCSR' | 'Pending'> {
  return config.keygenMode === 'agent' && cert.agent_id ? 'AwaitingCSR' : 'Pending';
}

/** The fields of a new issuing job: approval first when the profile asks for it. */
export function issuingJobState(
  config: Pick<KernelConfig, 'keygenMode' | 'approvalTimeoutMs'>,
  cert: Pick<CertificateForJob, 'agent_id'>,
  requiresApproval: boolean,
  now: Date,
): Pick<NewJob, 'status' | 'agent_id' | 'approval_expires_at'> {
  const ready = readyStatus(config, cert);
  return {
    status: requiresApproval ? 'AwaitingApproval' : ready,
    // Only a job the agent must act on is routed to it.
    agent_id: ready === 'AwaitingCSR' ? cert.agent_id : null,
    approval_expires_at: requiresApproval ? new Date(now.getTime() + config.approvalTimeoutMs) : null,
  };
}

/** Which of these profiles require approval (one query for any number of certificates). */
export async function profilesRequiringApproval(trx: Knex | Knex.Transaction, profileIds: (string | null)[]): Promise<Set<string>> {
  const ids = [...new Set(profileIds.filter((p): p is string => Boolean(p)))];
  if (!ids.length) return new Set();
  const rows = (await trx('certificate_profiles').whereIn('id', ids).where({ requires_approval: true }).select('id')) as { id: string }[];
  return new Set(rows.map((r) => r.id));
}

/**
 * Creates one Issuance or Renewal job per certificate inside the caller's
 * transaction, so the job exists exactly when the change that asked for it commits,
 * and an approval request for each job the profile holds in AwaitingApproval.
 */
export async function enqueueIssuingJobs(
  k: Pick<KernelServices, 'config' | 'jobs' | 'audit'>,
  trx: Knex.Transaction,
  certs: CertificateForJob[],
  type: (typeof ISSUING_JOB_TYPES)[number],
  opts: { actor: AuditActor; trigger: string; now?: Date },
): Promise<JobRow[]> {
  if (!certs.length) return [];
  const now = opts.now ?? new Date();
  const approval = await profilesRequiringApproval(trx, certs.map((c) => c.profile_id));
  const jobs: NewJob[] = certs.map((c) => ({
    type,
    certificate_id: c.id,
    ...issuingJobState(k.config, c, c.profile_id !== null && approval.has(c.profile_id), now),
    payload: { keygen: k.config.keygenMode, trigger: opts.trigger },
    requested_by: opts.actor.actor,
  }));
  const created = await k.jobs.enqueue(jobs, { trx, actor: opts.actor });
  await openIssuanceApprovals(trx, k.audit, created, opts.actor);
  return created;
}

/** Open Issuance/Renewal jobs of these certificates, keyed by certificate. */
export async function openIssuingJobs(trx: Knex | Knex.Transaction, certificateIds: string[]): Promise<Map<string, JobRow>> {
  const out = new Map<string, JobRow>();
  if (!certificateIds.length) return out;
  const rows = (await trx('jobs').whereIn('certificate_id', certificateIds).whereIn('type', ISSUING_JOB_TYPES)
    .whereIn('status', OPEN_JOB_STATUSES).orderBy('created_at')) as JobRow[];
  for (const r of rows) if (!out.has(r.certificate_id!)) out.set(r.certificate_id!, r);
  return out;
}
