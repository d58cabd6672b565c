import type { KernelServices } from '../kernel-services.js';
import { CrlService } from './crl-service.js';
import { OcspResponders } from './ocsp-responders.js';
import { OcspService } from './ocsp-service.js';

export interface Revocation {
  crl: CrlService;
  responders: OcspResponders;
  ocsp: OcspService;
  /** The newest revocation this replica has applied to its OCSP cache (for the cross-replica sync). */
  syncedUntil: Date;
}

const instances = new WeakMap<object, Revocation>();
/** Audit actions that change which CAs of an issuer sign and publish (kernel/src/ca). */
const CA_CHANGES = new Set(['ca_created', 'ca_activated', 'ca_retiring', 'ca_retired']);

/**
 * The revocation services of one kernel, made on first use and shared by its
 * routes, loops and PKI endpoints (keyed by the kernel's database handle, which
 * every view of one kernel shares and two kernels in one process never do). CRLs and
 * responder certificates are signed through the kernel's CA keystore. A committed
 * revocation (its audit event) drops the OCSP answers cached for its serials at
 * once and asks for a new CRL.
 */
export function revocationOf(k: KernelServices): Revocation {
  let r = instances.get(k.db);
  if (r) return r;
  const responders = new OcspResponders(k, k.caKeystore);
  r = { crl: new CrlService(k, k.caKeystore), responders, ocsp: new OcspService(k, responders), syncedUntil: new Date() };
  const rev = r;
  k.audit.onAppend((rows) => {
    let revoked = false;
    for (const row of rows) {
      if (row.action === 'certificate_revoked') {
        const d = (row.details ?? {}) as { issuer_id?: string; serials?: string[] };
        if (d.issuer_id) rev.ocsp.invalidate(d.issuer_id, d.serials ?? []);
        revoked = true;
      } else if (CA_CHANGES.has(row.action)) {
        const d = (row.details ?? {}) as { issuer_id?: string };
        if (d.issuer_id) {
          rev.ocsp.forgetIssuer(d.issuer_id);
          rev.crl.forget(d.issuer_id);
        }
      }
    }
    if (revoked) rev.crl.soon();
  });
  instances.set(k.db, r);
  return r;
}
