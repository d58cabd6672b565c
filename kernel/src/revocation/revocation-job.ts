import type { JobHandler, JobOutcome } from '../jobs/job-queue.js';
import type { KernelServices } from '../kernel-services.js';
import { PluginCallError } from '../plugins/host/contracts.js';

const failure = (message: string, retryable: boolean) => Object.assign(new Error(message), { retryable });

/**
 * The Revocation job: tells an external CA (the issuer plugin's `revoke`) about
 * serials the kernel does not publish itself. The certificate is already Revoked
 * in the inventory and the revocation recorded when this runs; this step is
 * best-effort, retried with backoff, and a plugin without `revoke` completes it
 * with issuer_notified: false (the CA learns of it some other way, or never issued it).
 * Jobs for serials the kernel's own CAs signed are completed when they are created.
 */
export function revocationJobHandler(k: KernelServices): JobHandler {
  return async (job): Promise<JobOutcome> => {
    const payload = job.payload ?? {};
    if (!payload.notify_issuer) return { status: 'completed', result: { issuer_notified: false, published_by: 'kernel' } };
    const cert = (await k.db.knex('managed_certificates as c').join('issuers as i', 'i.id', 'c.issuer_id').where('c.id', job.certificate_id ?? '')
      .first('c.id', 'c.issuer_id', 'i.type as issuer_type')) as { id: string; issuer_id: string; issuer_type: string } | undefined;
    if (!cert) throw failure(`certificate ${job.certificate_id} or its issuer no longer exists`, false);
    const serials = Array.isArray(payload.serials) ? (payload.serials as string[]) : [];
    const notified: string[] = [];
    for (const serial of serials) {
      const version = (await k.db.knex('certificate_versions').where({ certificate_id: cert.id }).whereRaw('lower(serial_number) = ?', [serial]).first('pem_chain')) as { pem_chain: string } | undefined;
      let result: { status?: string; reason?: string; retryable?: boolean };
      try {
        result = (await k.pluginHost.call(cert.issuer_type, cert.issuer_id, 'revoke', {
          serialNumber: serial, reason: String(payload.reason ?? 'unspecified'), ...(version ? { certificatePem: version.pem_chain } : {}),
        })) as typeof result;
      } catch (err) {
        if (err instanceof PluginCallError && err.code === 'not_supported') return { status: 'completed', result: { issuer_notified: false, reason: 'the issuer plugin has no revoke method' } };
        throw failure(`issuer ${cert.issuer_id} revoke failed: ${(err as Error).message}`, true);
      }
      if (result?.status !== 'revoked') throw failure(`issuer ${cert.issuer_id} refused to revoke ${serial}: ${result?.reason ?? 'no reason given'}`, result?.retryable !== false);
      notified.push(serial);
    }
    return { status: 'completed', result: { issuer_notified: true, serials: notified } };
  };
}
