import { X509Certificate } from 'node:crypto';
import type { EnrolledCertificateStatus, ProtocolHttpResponse } from '@certctl/sdk';
import { fail, json, type AcmeRequest } from './acme-http.js';
import type { AcmeState } from './acme-state.js';
import { kids, readTlv } from './csr-names.js';

/*
 * ACME Renewal Information (RFC 9773). A certificate is named by its certID:
 * base64url(authorityKeyIdentifier keyIdentifier) "." base64url(serial DER
 * content octets). GET <renewalInfo>/<certID> answers when to renew it; a
 * new-order may name the certificate it `replaces`, which this server then
 * issues as a renewal of the same managed certificate.
 *
 * The window is the middle of the last third of the validity (from 2/3 to 5/6
 * of the lifetime), so clients spread their renewals and still have time to
 * retry. A revoked certificate, or one the operator asked to renew in certctl
 * (POST /certificates/{id}/renew, bulk renew) since it was issued, gets a
 * window in the past: renew now.
 */

const RETRY_AFTER_S = 6 * 3600;
const RETRY_AFTER_NOW_S = 3600;
const OID_AKI = '551d23';
const B64URL = /^[A-Za-z0-9_-]+$/;

export interface CertId { aki: Buffer; serial: string; text: string }

/** The parts of a certID, or null when it is not one. Serial: lower-case hex without leading zeros (the serial index's form). */
export function parseCertId(text: unknown): CertId | null {
  if (typeof text !== 'string' || text.length > 300) return null;
  const parts = text.split('.');
  if (parts.length !== 2 || !parts.every((p) => B64URL.test(p))) return null;
  const aki = Buffer.from(parts[0], 'base64url');
  const serialDer = Buffer.from(parts[1], 'base64url');
  if (!aki.length || !serialDer.length || serialDer.length > 21) return null;
  return { aki, serial: serialDer.toString('hex').replace(/^0+/, '') || '0', text };
}

/** The authorityKeyIdentifier keyIdentifier of a DER certificate, or null. */
export function authorityKeyId(der: Buffer): Buffer | null {
  try {
    const cert = readTlv(der, 0);
    if (!cert) return null;
    const [tbs] = kids(der, cert);
    const extensions = kids(der, tbs).find((t) => t.tag === 0xa3);
    if (!extensions) return null;
    const [list] = kids(der, extensions);
    for (const ext of kids(der, list)) {
      const fields = kids(der, ext);
      if (der.subarray(fields[0].start, fields[0].end).toString('hex') !== OID_AKI) continue;
      const octets = fields[fields.length - 1];
      const aki = readTlv(der, octets.start, octets.end);
      const keyId = aki ? kids(der, aki).find((t) => t.tag === 0x80) : undefined;
      return keyId ? der.subarray(keyId.start, keyId.end) : null;
    }
    return null;
  } catch {
    return null;
  }
}

/** The certID of a certificate (PEM or DER), as a client computes it. */
export function certIdOf(cert: X509Certificate): string | null {
  const aki = authorityKeyId(cert.raw);
  if (!aki) return null;
  let serial = Buffer.from(cert.serialNumber.length % 2 ? `0${cert.serialNumber}` : cert.serialNumber, 'hex');
  if (serial[0] & 0x80) serial = Buffer.concat([Buffer.from([0]), serial]); // DER INTEGER: positive
  return `${aki.toString('base64url')}.${serial.toString('base64url')}`;
}

export interface IssuedCertificate {
  orderId: string;
  account: string;
  certificateId: string;
  serial: string;
  leaf: X509Certificate;
}

/** The certificate this server issued under a certID (serial and authority key both match), or undefined. */
export async function findIssued(state: AcmeState, id: CertId): Promise<IssuedCertificate | undefined> {
  const ref = await state.serial(id.serial);
  const chain = ref ? await state.chain(ref.order) : undefined;
  if (!ref || !chain) return undefined;
  const leaf = new X509Certificate(chain.pem.slice(0, chain.pem.indexOf('-----END CERTIFICATE-----') + 25));
  if (!authorityKeyId(leaf.raw)?.equals(id.aki)) return undefined;
  return { orderId: ref.order, account: chain.account, certificateId: chain.certificateId, serial: id.serial, leaf };
}

/** The suggested window of a certificate: the middle of its last third, or the past when it should be renewed now. */
export function suggestedWindow(leaf: X509Certificate, status: EnrolledCertificateStatus | null, now: number): { start: string; end: string; renewNow: boolean } {
  if (status?.renewNow) return { start: new Date(now - 2 * 3600_000).toISOString(), end: new Date(now - 3600_000).toISOString(), renewNow: true };
  const from = Date.parse(leaf.validFrom);
  const life = Date.parse(leaf.validTo) - from;
  return { start: new Date(from + Math.round((life * 2) / 3)).toISOString(), end: new Date(from + Math.round((life * 5) / 6)).toISOString(), renewNow: false };
}

/** GET <dirBase>/renewal-info/<certID> (unauthenticated, RFC 9773 4.2). */
export async function renewalInfo(r: AcmeRequest, state: AcmeState, certIdText: string): Promise<ProtocolHttpResponse> {
  if (r.req.method !== 'GET' && r.req.method !== 'HEAD') return fail('malformed', 'GET the renewal information', 405, {}, { Allow: 'GET' });
  const id = parseCertId(certIdText);
  if (!id) return fail('malformed', 'the certID must be base64url(authority key identifier) "." base64url(serial number)');
  const issued = await findIssued(state, id);
  if (!issued) return fail('malformed', 'no certificate issued here has this certID', 404);
  const status = await r.ctx.issuance.certificateStatus({ certificateId: issued.certificateId, serialNumber: issued.serial });
  const window = suggestedWindow(issued.leaf, status, r.ctx.clock.now());
  const explanation = r.ctx.config.renewal_explanation_url;
  return json(200, {
    suggestedWindow: { start: window.start, end: window.end },
    ...(window.renewNow && typeof explanation === 'string' ? { explanationURL: explanation } : {}),
  }, { 'Retry-After': String(window.renewNow ? RETRY_AFTER_NOW_S : RETRY_AFTER_S) });
}
