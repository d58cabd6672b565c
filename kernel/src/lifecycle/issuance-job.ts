import type { Knex } from 'knex';
import type { JobHandler, JobOutcome } from '../jobs/job-queue.js';
import type { JobRow } from '../jobs/job-states.js';
import type { KernelServices } from '../kernel-services.js';
import { IssuanceError, recordFinalFailures, refused } from './issuance-failure.js';
import { certificateSans } from './issuance-names.js';
import { generateServerKey, storeServerKey } from './issuance-server-key.js';
import { issueCertificate } from './issuance-service.js';
import { newId } from '../db/ids.js';

/**
 * The Issuance and Renewal job handler.
 *
 * The CSR comes from the job: the agent's (agent keygen: H3a's CSR route stores it
 * in payload.csr_pem and moves the job to Pending), or one the kernel makes with a
 * key of its own (server keygen, decided when the job was created: payload.keygen).
 * A CA order left pending is kept in payload.order_id and followed up with
 * checkOrder on the next attempt (retry_later does not spend an attempt).
 *
 * Crash safety: the version carries the job id (unique). A job retried after its
 * version was stored (the replica died before the job was marked Completed)
 * completes with that version instead of asking the CA again; and the store is
 * fenced on this replica still holding the job's lease, so a replica that lost the
 * job cannot store alongside the one that took it over.
 *
 * On the final failed attempt the certificate goes to Failed, with an audit event
 * and a RenewalFailure notification; the queue then fails the job with the message.
 */
export function issuanceJobHandler(k: KernelServices): JobHandler {
  return async (job, { log }): Promise<JobOutcome> => {
    const knex = k.db.knex;
    const done = (await knex('certificate_versions').where({ job_id: job.id }).first('id', 'serial_number')) as { id: string; serial_number: string } | undefined;
    if (done) return { status: 'completed', result: { version_id: done.id, serial_number: done.serial_number, recovered: true } };
    if (!job.certificate_id) throw refused(`${job.type} job ${job.id} names no certificate`);
    const type = job.type === 'Renewal' ? 'Renewal' : 'Issuance';
    try {
      const payload = job.payload ?? {};
      let csrPem = typeof payload.csr_pem === 'string' ? payload.csr_pem : null;
      const serverKey = payload.key_source === 'server' || (!csrPem && (payload.keygen ?? k.config.keygenMode) === 'server');
      if (!csrPem) {
        if (!serverKey) throw refused('no CSR: keys are made on agents (CERTCTL_KEYGEN_MODE=agent) and no agent sent one; assign an agent to the certificate and renew it');
        csrPem = await prepareServerKey(k, job);
      }
      const out = await issueCertificate(k, {
        certificateId: job.certificate_id,
        type,
        csrPem,
        jobId: job.id,
        serverKey,
        orderId: typeof payload.order_id === 'string' ? payload.order_id : null,
        requestedNotAfter: requestedNotAfter(payload.not_after),
        lease: { jobId: job.id, owner: k.replicaId, attempts: job.attempts },
        details: { trigger: payload.trigger ?? null },
      });
      if (out.status === 'pending') {
        await updatePayload(k, knex, job, { order_id: out.orderId });
        log.info({ order_id: out.orderId, retry_after_ms: out.retryAfterMs }, 'CA order pending');
        return { status: 'retry_later', delayMs: out.retryAfterMs, note: `waiting for CA order ${out.orderId}` };
      }
      return { status: 'completed', result: { version_id: out.versionId, serial_number: out.serialNumber, deployment_job_ids: out.deploymentJobIds } };
    } catch (err) {
      const e = err instanceof IssuanceError ? err : new IssuanceError((err as Error)?.message ?? String(err), true);
      if (!e.retryable || job.attempts >= job.max_attempts) await markFailed(k, job, type, e.message).catch((f: unknown) => log.error({ err: f }, 'could not mark the certificate Failed'));
      throw e;
    }
  };
}

/** The handlers to register: Issuance and Renewal jobs run the same flow. */
export function issuanceJobHandlers(k: KernelServices): { Issuance: JobHandler; Renewal: JobHandler } {
  const handler = issuanceJobHandler(k);
  return { Issuance: handler, Renewal: handler };
}

/** payload.not_after: an ISO 8601 time the job asks the certificate to last until. */
function requestedNotAfter(value: unknown): Date | null {
  if (value === undefined || value === null) return null;
  const at = typeof value === 'string' ? new Date(value) : null;
  if (!at || Number.isNaN(at.getTime())) throw refused(`payload.not_after ${JSON.stringify(value)} is not an ISO 8601 time`);
  return at;
}

/**
 * Server keygen: a key and CSR made once per job, kept (key sealed, CSR in the
 * payload) in one transaction, so a retry or a pending CA order reuses them.
 */
async function prepareServerKey(k: KernelServices, job: JobRow): Promise<string> {
  const cert = (await k.db.knex('managed_certificates').where({ id: job.certificate_id }).first('common_name', 'sans')) as { common_name: string; sans: string[] } | undefined;
  if (!cert) throw refused(`certificate ${job.certificate_id} does not exist`);
  const key = await generateServerKey(cert.common_name, certificateSans(cert));
  await k.db.knex.transaction(async (trx) => {
    await updatePayload(k, trx, job, { csr_pem: key.csrPem, key_source: 'server' });
    // A key left by an attempt that died before its payload update committed is replaced.
    await trx('certificate_keys').where({ job_id: job.id }).whereNull('version_id').delete();
    await storeServerKey(k, trx, { id: newId('certificateKey'), certificateId: job.certificate_id!, jobId: job.id, key });
  });
  return key.csrPem;
}

/** The lease-holder check writes by a job handler are fenced on (the queue's own rule). */
const held = (k: KernelServices, job: JobRow) => ({ id: job.id, status: 'Running', lease_owner: k.replicaId, attempts: job.attempts });

async function updatePayload(k: KernelServices, db: Knex | Knex.Transaction, job: JobRow, patch: Record<string, unknown>): Promise<void> {
  const n = await db('jobs').where(held(k, job)).update({ payload: db.raw('payload || ?::jsonb', [JSON.stringify(patch)]), updated_at: db.fn.now() });
  if (n !== 1) throw new IssuanceError(`job ${job.id} is no longer held by this replica`, true);
}

/** The final failure: the certificate goes to Failed (unless it was closed meanwhile), audited, with a RenewalFailure. */
async function markFailed(k: KernelServices, job: JobRow, type: 'Issuance' | 'Renewal', reason: string): Promise<void> {
  await k.db.knex.transaction(async (trx) => {
    const cert = (await trx('managed_certificates').where({ id: job.certificate_id }).whereNotIn('status', ['Revoked', 'Archived'])
      .forUpdate().first('id', 'common_name', 'status')) as { id: string; common_name: string; status: string } | undefined;
    if (!cert) return;
    await trx('managed_certificates').where({ id: cert.id }).update({ status: 'Failed', updated_at: new Date() });
    await recordFinalFailures(k, trx, [{ certificateId: cert.id, commonName: cert.common_name, fromStatus: cert.status, jobId: job.id, jobType: type, error: reason }]);
  });
}
