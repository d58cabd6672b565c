import type { EnrolledCertificateStatus, Json } from '@certctl/sdk';
import type { KernelServices } from '../kernel-services.js';
import { RENEWAL_REQUESTED } from '../lifecycle/renewal-requests.js';
import { canonicalSerial } from '../revocation/leaf-facts.js';

type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export function parseStatusRequest(raw: Json): Parsed<{ certificateId: string; serialNumber: string }> {
  const r = raw as Record<string, unknown> | null;
  if (!r || typeof r !== 'object' || Array.isArray(r)) return { ok: false, problem: 'the status request must be an object' };
  if (typeof r.certificateId !== 'string' || !ID.test(r.certificateId)) return { ok: false, problem: 'certificateId must be a certificate id' };
  if (typeof r.serialNumber !== 'string' || !/^[0-9a-fA-F]{1,64}$/.test(r.serialNumber)) return { ok: false, problem: 'serialNumber must be hex' };
  return { ok: true, value: { certificateId: r.certificateId, serialNumber: canonicalSerial(r.serialNumber) } };
}

/**
 * ctx.issuance.certificateStatus: what the kernel knows of one version of a
 * certificate the calling protocol enrolled, for ACME renewal information
 * (RFC 9773). `renewNow` when that version is revoked (by the API, a protocol
 * or a CA), the certificate is revoked, or an operator asked for a new version
 * since that one was issued (its audited renewal request: the kernel cannot renew
 * a certificate whose key only the client holds, so the request is passed on to
 * the client). null for a certificate
 * this protocol did not enrol.
 */
export async function enrolledStatus(k: KernelServices, pluginId: string, req: { certificateId: string; serialNumber: string }): Promise<EnrolledCertificateStatus | null> {
  const knex = k.db.knex;
  const cert = (await knex('managed_certificates').where({ id: req.certificateId }).first('id', 'status', 'serial_number', 'tags')) as
    { id: string; status: string; serial_number: string | null; tags: unknown } | undefined;
  const tags = (typeof cert?.tags === 'string' ? JSON.parse(cert.tags) : cert?.tags) as Record<string, string> | undefined;
  if (!cert || tags?.protocol !== pluginId) return null;
  const serials = [req.serialNumber, req.serialNumber.replace(/^0+/, '')];
  const [revoked, version] = await Promise.all([
    knex('certificate_revocations').where({ certificate_id: cert.id }).whereIn('serial_number', serials).first('id'),
    knex('certificate_versions').where({ certificate_id: cert.id }).whereIn('serial_number', serials).orderBy('created_at').first('created_at') as Promise<{ created_at: Date } | undefined>,
  ]);
  // Every operator request for a new version is audited (with a Renewal job, or for a certificate
  // the client renews, without one: lifecycle/renewal-requests.ts); the protocol's own renewals are not.
  const asked = knex('audit_events').where({ resource_type: 'certificate', resource_id: cert.id, action: RENEWAL_REQUESTED });
  if (version) asked.where('occurred_at', '>=', version.created_at);
  const renewal = await asked.first('seq');
  return {
    status: cert.status,
    serialNumber: cert.serial_number ? canonicalSerial(cert.serial_number) : null,
    revoked: Boolean(revoked) || cert.status === 'Revoked',
    renewNow: Boolean(revoked) || cert.status === 'Revoked' || Boolean(renewal),
  };
}
