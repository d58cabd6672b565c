import type { Principal } from '../../auth/principal.js';
import { appError } from '../../errors.js';
import { OPEN_JOB_STATUSES, type JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { openIssuingJobs } from '../../lifecycle/issuance-jobs.js';
import { askClientToRenew, renewalRefusal, renewedByClient, requestNewVersions } from '../../lifecycle/renewal-requests.js';
import type { CertificateRow } from './certificate-model.js';
import { loadVisibleCertificate } from './certificate-store.js';
import { replaceTargets } from './certificate-targets.js';
import { actorOf } from '../../audit/audit-log.js';

/**
 * Archives a certificate (kept for history, no longer managed) and cancels the
 * jobs still waiting for it. A running job cannot be cancelled (the queue only
 * lets it finish or fail), so archiving waits for it: 409 until it is done.
 */
export async function archiveCertificate(k: KernelServices, principal: Principal, id: string): Promise<CertificateRow> {
  const now = new Date();
  return k.db.knex.transaction(async (trx) => {
    const cert = await loadVisibleCertificate(trx, id, principal, ['cert.read', 'cert.delete'], { lock: true });
    principal.require('cert.delete', cert);
    if (cert.status === 'Archived') throw appError('INVALID_STATE', `Certificate ${id} is already archived`);
    const open = (await trx('jobs').where({ certificate_id: id }).whereIn('status', OPEN_JOB_STATUSES).orderBy('created_at').select('id', 'status')) as Pick<JobRow, 'id' | 'status'>[];
    const running = open.filter((j) => j.status === 'Running');
    if (running.length) throw appError('INVALID_STATE', `Certificate ${id} has a running job (${running[0].id}); archive it once the job has finished`);
    const actor = actorOf(principal);
    const cancelled: string[] = [];
    for (const j of open) {
      const res = await k.jobs.cancel(j.id, { actor, reason: 'certificate archived', trx });
      if (res.ok) cancelled.push(j.id);
    }
    const [archived] = (await trx('managed_certificates').where({ id }).update({ status: 'Archived', updated_at: now }).returning('*')) as CertificateRow[];
    await k.audit.append({
      category: 'lifecycle', ...actor, action: 'certificate_archived', resource_type: 'certificate', resource_id: id,
      details: { from: cert.status, cancelled_jobs: cancelled },
    }, trx);
    return archived;
  });
}

/**
 * Asks for a new version now. An issued certificate gets a Renewal job and goes
 * RenewalInProgress; one that was never issued (its issuance failed or was
 * cancelled) gets a fresh Issuance job and stays Pending. Refused while an
 * Issuance or Renewal job is open, and for revoked or archived certificates.
 * A certificate its client renews (protocol-enrolled) gets no job: the request
 * is recorded for the client to see (ARI) and its status stays as it is.
 */
export async function renewCertificate(k: KernelServices, principal: Principal, id: string): Promise<{ job: JobRow } | { client: Awaited<ReturnType<typeof askClientToRenew>>[number] }> {
  const now = new Date();
  return k.db.knex.transaction(async (trx) => {
    const cert = await loadVisibleCertificate(trx, id, principal, ['cert.read', 'cert.renew'], { lock: true });
    principal.require('cert.renew', cert);
    const refusal = renewalRefusal(cert, (await openIssuingJobs(trx, [id])).get(id));
    if (refusal) throw appError('INVALID_STATE', refusal.message);
    const opts = { actor: actorOf(principal), trigger: 'manual', now };
    if (renewedByClient(cert)) return { client: (await askClientToRenew(k, trx, [cert], opts))[0] };
    const [job] = await requestNewVersions(k, trx, [cert], opts);
    return { job };
  });
}

/** Replaces the certificate's deployment targets (the next deployment uses the new set). */
export async function setCertificateTargets(k: KernelServices, principal: Principal, id: string, targetIds: string[]): Promise<void> {
  const now = new Date();
  await k.db.knex.transaction(async (trx) => {
    const cert = await loadVisibleCertificate(trx, id, principal, ['cert.read', 'cert.edit'], { lock: true });
    principal.require('cert.edit', cert);
    if (cert.status === 'Archived') throw appError('INVALID_STATE', `Certificate ${id} is archived and cannot be edited`);
    const { added, removed } = await replaceTargets(trx, principal, id, targetIds);
    if (!added.length && !removed.length) return;
    await trx('managed_certificates').where({ id }).update({ updated_at: now });
    await k.audit.append({
      category: 'lifecycle', ...actorOf(principal), action: 'certificate_targets_updated', resource_type: 'certificate', resource_id: id,
      details: { added, removed },
    }, trx);
  });
}
