import type { EnrollRequest, EnrollRevokeRequest, Json } from '@certctl/sdk';
import { REASON_NAMES } from '../revocation/reasons.js';

/*
 * The requests of ctx.issuance arrive as unchecked JSON from plugin code (possibly
 * an isolate): each is rebuilt here from known fields before the kernel acts on it.
 */

type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

const MAX_CSR = 64 * 1024;
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const REQUESTER_KIND = /^[a-z][a-z0-9-]{0,39}$/;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseEnrollRequest(raw: Json): Parsed<EnrollRequest> {
  if (!isRecord(raw)) return { ok: false, problem: 'the enrol request must be an object' };
  const { profileId, issuerId, csrPem, requester, certificateId, notAfter } = raw;
  if (profileId !== null && !(typeof profileId === 'string' && ID.test(profileId))) return { ok: false, problem: 'profileId must be a profile id or null' };
  if (typeof issuerId !== 'string' || !ID.test(issuerId)) return { ok: false, problem: 'issuerId must be an issuer id' };
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR || !csrPem.includes('CERTIFICATE REQUEST-----')) return { ok: false, problem: `csrPem must be a PEM certificate request of at most ${MAX_CSR} characters` };
  if (!isRecord(requester) || typeof requester.kind !== 'string' || !REQUESTER_KIND.test(requester.kind)) return { ok: false, problem: 'requester.kind must be a short lower-case name (e.g. est-basic)' };
  if (typeof requester.id !== 'string' || requester.id.length < 1 || requester.id.length > 256 || /[\0\r\n]/.test(requester.id)) return { ok: false, problem: 'requester.id must be a one-line string of 1 to 256 characters' };
  if (certificateId !== undefined && !(typeof certificateId === 'string' && ID.test(certificateId))) return { ok: false, problem: 'certificateId must be a certificate id' };
  if (notAfter !== undefined && (typeof notAfter !== 'string' || Number.isNaN(Date.parse(notAfter)))) return { ok: false, problem: 'notAfter must be an ISO 8601 time' };
  return {
    ok: true,
    value: {
      profileId: profileId as string | null,
      issuerId,
      csrPem,
      requester: { kind: requester.kind, id: requester.id },
      ...(certificateId !== undefined ? { certificateId: certificateId as string } : {}),
      ...(notAfter !== undefined ? { notAfter: notAfter as string } : {}),
    },
  };
}

export function parseRevokeRequest(raw: Json): Parsed<EnrollRevokeRequest> {
  if (!isRecord(raw)) return { ok: false, problem: 'the revoke request must be an object' };
  if (typeof raw.certificateId !== 'string' || !ID.test(raw.certificateId)) return { ok: false, problem: 'certificateId must be a certificate id' };
  if (raw.reason !== undefined && !(typeof raw.reason === 'string' && REASON_NAMES.includes(raw.reason))) return { ok: false, problem: `reason must be one of ${REASON_NAMES.join(', ')}` };
  return { ok: true, value: { certificateId: raw.certificateId, ...(raw.reason !== undefined ? { reason: raw.reason as string } : {}) } };
}

export function parseCaChainRequest(raw: Json): Parsed<{ issuerId: string }> {
  if (!isRecord(raw) || typeof raw.issuerId !== 'string' || !ID.test(raw.issuerId)) return { ok: false, problem: 'issuerId must be an issuer id' };
  return { ok: true, value: { issuerId: raw.issuerId } };
}
