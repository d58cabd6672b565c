import { PUBLISHING_STATUSES } from '../ca/ca-store.js';
import type { JobHandler } from '../jobs/job-queue.js';
import type { KernelServices } from '../kernel-services.js';
import type { LoopDef } from '../scheduler/scheduler.js';
import { revocationJobHandler } from './revocation-job.js';
import { revocationOf } from './revocation-services.js';

export { revocationRoutes } from './routes.js';
export { pkiRequestHandler } from './pki-http.js';

/** How often the CRL loop looks for CRLs to re-sign (and responders to rotate). */
const CRL_LOOP_MS = 60_000;
/** How often a replica reads revocations made elsewhere to drop its cached OCSP answers. */
const OCSP_SYNC_MS = 2_000;

export function revocationJobHandlers(k: KernelServices): { Revocation: JobHandler } {
  return { Revocation: revocationJobHandler(k) };
}

export function revocationLoops(k: KernelServices): LoopDef[] {
  return [
    {
      name: 'crl-generation',
      intervalMs: CRL_LOOP_MS,
      singleReplica: true,
      tick: async (signal) => {
        const rev = revocationOf(k);
        const r = await rev.crl.runCycle(signal);
        if (r.generated) k.log.info(r, 'CRL generation cycle');
        // Responders are replaced here ahead of expiry, not by the request that finds one due.
        const cas = (await k.db.knex('ocsp_responders as o').join('certificate_authorities as ca', 'ca.id', 'o.ca_id')
          .where('o.status', 'active').whereIn('ca.status', PUBLISHING_STATUSES).select('ca.id', 'ca.issuer_id', 'ca.subject', 'ca.not_after')) as { id: string; issuer_id: string; subject: string; not_after: Date }[];
        for (const ca of cas) if (!signal.aborted) await rev.responders.forCa(ca);
      },
    },
    {
      name: 'ocsp-cache-sync',
      intervalMs: OCSP_SYNC_MS,
      singleReplica: false,
      tick: async () => {
        const rev = revocationOf(k);
        const from = new Date(rev.syncedUntil.getTime() - 10_000);
        const until = new Date();
        const rows = (await k.db.knex('certificate_revocations').where('created_at', '>=', from).select('issuer_id', 'serial_number')) as { issuer_id: string; serial_number: string }[];
        for (const r of rows) rev.ocsp.invalidate(r.issuer_id, [r.serial_number]);
        for (const issuerId of new Set(rows.map((r) => r.issuer_id))) rev.crl.forget(issuerId);
        rev.syncedUntil = until;
      },
    },
  ];
}
