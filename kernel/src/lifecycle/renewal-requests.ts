import type { Knex } from 'knex';
import { SYSTEM_ACTOR, type AuditActor } from '../audit/audit-log.js';
import { rowsOf } from '../db/raw-rows.js';
import type { JobRow } from '../jobs/job-states.js';
import type { KernelServices } from '../kernel-services.js';
import { CLIENT_RENEWED_POLICY } from '../protocols/protocol-enroll.js';
import { enqueueIssuingJobs, type CertificateForJob } from './issuance-jobs.js';

export interface RenewableCertificate extends CertificateForJob {
  status: string;
  expires_at: Date | null;
}

/** Why a certificate cannot be asked for a new version now (revoked, archived, or one already on its way), or null. */
export function renewalRefusal(cert: { id: string; status: string }, openJob: Pick<JobRow, 'id' | 'type' | 'status'> | undefined): { code: 'invalid_state' | 'job_already_open'; message: string } | null {
  if (cert.status === 'Revoked' || cert.status === 'Archived') return { code: 'invalid_state', message: `Certificate ${cert.id} is ${cert.status} and cannot be renewed` };
  if (openJob) return { code: 'job_already_open', message: `Certificate ${cert.id} already has an open ${openJob.type} job (${openJob.id}, ${openJob.status})` };
  return null;
}

/**
 * Asks for a new version of each certificate in the caller's transaction (which has
 * them locked and has checked they may be renewed and have no open issuing job): an
 * issued one gets a Renewal job and goes RenewalInProgress, one never issued (its
 * issuance failed or was cancelled) gets a fresh Issuance job and is Pending again.
 * The one path for manual, bulk and expiry-driven renewals. Returns the jobs.
 */
export async function requestNewVersions(
  k: Pick<KernelServices, 'config' | 'jobs' | 'audit'>,
  trx: Knex.Transaction,
  certs: RenewableCertificate[],
  opts: { actor: AuditActor; trigger: string; now: Date },
): Promise<JobRow[]> {
  if (!certs.length) return [];
  const undated = certs.filter((c) => c.expires_at === null).map((c) => c.id);
  const versioned = new Set(undated.length
    ? ((await trx('certificate_versions').whereIn('certificate_id', undated).distinct('certificate_id')) as { certificate_id: string }[]).map((r) => r.certificate_id)
    : []);
  const issued = (c: RenewableCertificate) => c.expires_at !== null || versioned.has(c.id);
  const renew = certs.filter(issued);
  const issue = certs.filter((c) => !issued(c));
  const jobs = [
    ...(await enqueueIssuingJobs(k, trx, renew, 'Renewal', opts)),
    ...(await enqueueIssuingJobs(k, trx, issue, 'Issuance', opts)),
  ];
  if (renew.length) await trx('managed_certificates').whereIn('id', renew.map((c) => c.id)).update({ status: 'RenewalInProgress', updated_at: opts.now });
  if (issue.length) await trx('managed_certificates').whereIn('id', issue.map((c) => c.id)).update({ status: 'Pending', updated_at: opts.now });
  const jobOf = new Map(jobs.map((j) => [j.certificate_id, j]));
  await k.audit.append(certs.map((c) => {
    const job = jobOf.get(c.id)!;
    const renewing = job.type === 'Renewal';
    return {
      category: 'lifecycle' as const, ...opts.actor, action: renewing ? RENEWAL_REQUESTED : 'certificate_issuance_retried', resource_type: 'certificate', resource_id: c.id,
      details: { job_id: job.id, job_status: job.status, from: c.status, to: renewing ? 'RenewalInProgress' : 'Pending', trigger: opts.trigger },
    };
  }), trx);
  return jobs;
}

/**
 * An expiry-loop renewal step: locks (skipping rows another kernel holds) up to
 * `batch` certificates that `fromWhere` selects (a FROM ... WHERE body naming the
 * certificate `c`) and asks for a new version of each. Returns how many.
 */
export async function renewSelected(
  trx: Knex.Transaction,
  ctx: { k: Pick<KernelServices, 'config' | 'jobs' | 'audit'>; stamp: Date; batch: number },
  trigger: string,
  fromWhere: string,
  bindings: readonly unknown[],
): Promise<number> {
  const certs = rowsOf<RenewableCertificate>(await trx.raw(
    `SELECT c.id, c.agent_id, c.profile_id, c.status, c.expires_at ${fromWhere} ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED`,
    [...bindings, ctx.batch] as Knex.RawBinding[],
  ));
  await requestNewVersions(ctx.k, trx, certs, { actor: SYSTEM_ACTOR, trigger, now: ctx.stamp });
  return certs.length;
}

/**
 * Whether the certificate's client renews it itself (enrolled through EST, SCEP or
 * ACME: renewal policy rp-client-renewed). The kernel holds no key or CSR for it,
 * so a Renewal job could only fail; a renewal request is passed on to the client
 * instead (ACME renewal information reads it: protocols/enrolled-status.ts).
 */
export const renewedByClient = (cert: { renewal_policy_id: string | null }): boolean => cert.renewal_policy_id === CLIENT_RENEWED_POLICY;

/** The audit action that records a request for a new version (with or without a job); ARI reads it. */
export const RENEWAL_REQUESTED = 'certificate_renewal_requested';

/**
 * Records, in the caller's transaction, that an operator asked for a new version of
 * certificates their clients renew: no job, no status change, one audit event each
 * (appended together: one append for a bulk request).
 */
export async function askClientToRenew(
  k: Pick<KernelServices, 'audit'>,
  trx: Knex.Transaction,
  certs: readonly { id: string; status: string }[],
  opts: { actor: AuditActor; trigger: string; now: Date },
): Promise<{ certificate_id: string; renewed_by: 'client'; requested_at: string; message: string }[]> {
  await k.audit.append(certs.map((cert) => ({
    category: 'lifecycle' as const, ...opts.actor, action: RENEWAL_REQUESTED, resource_type: 'certificate', resource_id: cert.id, occurred_at: opts.now,
    details: { renewed_by: 'client', status: cert.status, trigger: opts.trigger },
  })), trx);
  return certs.map((cert) => ({
    certificate_id: cert.id,
    renewed_by: 'client' as const,
    requested_at: opts.now.toISOString(),
    message: 'The client holds this certificate\'s key and renews it itself: no renewal job is queued. ACME clients are told to renew now through renewal information (ARI); EST and SCEP clients renew on their own schedule.',
  }));
}
