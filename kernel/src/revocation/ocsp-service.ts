import crypto from 'node:crypto';
import type { OcspSingle } from '../crypto/crypto-types.js';
import { bytesOf, children, contentOf, DerError, nullDer, octetString, oid, pemToDer, readTlv, seq, uintegerFromBytes } from '../crypto/der.js';
import { parseOcspRequest, type OcspCertId } from '../crypto/ocsp-request.js';
import { ocspErrorResponse } from '../crypto/ocsp-response.js';
import { PUBLISHING_STATUSES } from '../ca/ca-store.js';
import type { KernelServices } from '../kernel-services.js';
import type { OcspResponders } from './ocsp-responders.js';

/** How long a signed answer is valid (nextUpdate), and when a cached one is re-signed. */
export const OCSP_VALIDITY_MS = 4 * 3_600_000;
const REFRESH_AFTER_MS = OCSP_VALIDITY_MS / 2;
/** "unknown" is re-checked soon: the serial may be issued a moment later. */
const UNKNOWN_VALIDITY_MS = 5 * 60_000;
const UNKNOWN_REFRESH_MS = 30_000;
const CA_CACHE_MS = 5_000;
const MAX_CACHED = 200_000;
const HASHES = ['sha1', 'sha256', 'sha384', 'sha512'];

interface CaEntry {
  id: string;
  issuer_id: string;
  subject: string;
  not_after: Date;
  /** `${hash}:${nameHash}:${keyHash}` for each supported hash. */
  ids: Set<string>;
  /** The CA certificate's subject Name (DER) and public key bits: what a CertID hashes. */
  nameDer: Buffer;
  keyBits: Buffer;
}

interface Cached {
  der: Buffer;
  producedAt: number;
  refreshAt: number;
  expiresAt: number;
}

type Status = Pick<OcspSingle, 'status' | 'revokedAt' | 'reasonCode'>;

/** What is known about one serial of an issuer: its status (also for nonce requests) and the answers signed for it, by CertID. */
interface SerialEntry {
  caId: string;
  status: Status;
  statusUntil: number;
  signed: Map<string, Cached>;
}

export type OcspAnswer = { der: Buffer; cacheable: boolean; producedAt: number; nextUpdate: number | null };

const errorAnswer = (status: 1 | 2 | 3 | 6): OcspAnswer => ({ der: ocspErrorResponse(status), cacheable: false, producedAt: Date.now(), nextUpdate: null });
export const MALFORMED = () => errorAnswer(1);
export const INTERNAL_ERROR = () => errorAnswer(2);
export const TRY_LATER = () => errorAnswer(3);
const UNAUTHORIZED = () => errorAnswer(6);

function certIdInputs(certificatePem: string): Pick<CaEntry, 'ids' | 'nameDer' | 'keyBits'> {
  const der = pemToDer(certificatePem, /CERTIFICATE/);
  const [tbs] = children(der, readTlv(der, 0));
  const fields = children(der, tbs);
  const base = fields[0].tag === 0xa0 ? 1 : 0;
  const nameDer = bytesOf(der, fields[base + 4]);
  const [, keyBitsT] = children(der, fields[base + 5]);
  const keyBits = contentOf(der, keyBitsT).subarray(1);
  const ids = new Set(HASHES.map((h) => `${h}:${crypto.createHash(h).update(nameDer).digest('hex')}:${crypto.createHash(h).update(keyBits).digest('hex')}`));
  return { ids, nameDer, keyBits };
}

/**
 * The OCSP responder (RFC 6960). Answers for the serials of an issuer's kernel
 * CAs: revoked (time and reason) from certificate_revocations, good when the
 * serial was issued under the issuer, unknown otherwise; a CertID naming a CA that
 * is not this issuer's gets unauthorized, a request that does not parse gets
 * malformedRequest. Signed answers without a nonce are kept and served again
 * until half their validity has passed or the serial is revoked; a request with a
 * nonce is signed live so the nonce can be echoed.
 */
export class OcspService {
  private readonly cas = new Map<string, { at: number; list: CaEntry[] }>();
  private readonly answers = new Map<string, SerialEntry>();
  private readonly lookups = new Map<string, Promise<Status>>();
  /** Bumped by every invalidation: a lookup that straddles one is used once but not kept. */
  private epoch = 0;
  hits = 0;
  signed = 0;

  constructor(private readonly k: KernelServices, private readonly responders: OcspResponders) {}

  /** Drops cached answers for these serials (after a revocation). */
  invalidate(issuerId: string, serials: string[]): void {
    this.epoch++;
    for (const s of serials) {
      this.answers.delete(`${issuerId}|${s}`);
      this.lookups.delete(`${issuerId}|${s}`);
    }
  }

  /** Drops everything cached for an issuer (a CA changed). */
  forgetIssuer(issuerId: string): void {
    this.epoch++;
    this.cas.delete(issuerId);
    for (const key of this.answers.keys()) if (key.startsWith(`${issuerId}|`)) this.answers.delete(key);
  }

  /** Answers a DER OCSPRequest for `issuerId`; never throws (errors become OCSP error statuses). */
  async answer(issuerId: string, body: Buffer): Promise<OcspAnswer> {
    let request;
    try {
      request = parseOcspRequest(body);
    } catch (err) {
      if (err instanceof DerError || err instanceof RangeError) return MALFORMED();
      throw err;
    }
    try {
      return await this.answerParsed(issuerId, request.certIds, request.nonceExtension);
    } catch (err) {
      this.k.log.error({ err, issuer_id: issuerId }, 'OCSP responder failed');
      return INTERNAL_ERROR();
    }
  }

  /** An answer for one serial of the issuer's active CA (GET /api/v1/ocsp/{issuer}/{serial}). */
  async answerSerial(issuerId: string, serialHex: string): Promise<OcspAnswer | null> {
    const [ca] = await this.casOf(issuerId);
    if (!ca) return null;
    const sha1 = (b: Buffer) => octetString(crypto.createHash('sha1').update(b).digest());
    // CertID with SHA-1 (RFC 6960 4.1.1), as a client would send it.
    const certIdDer = seq(seq(oid('1.3.14.3.2.26'), nullDer), sha1(ca.nameDer), sha1(ca.keyBits), uintegerFromBytes(Buffer.from(serialHex, 'hex')));
    const certId: OcspCertId = { der: certIdDer, hash: 'sha1', nameHash: '', keyHash: '', serialHex };
    return this.answerFor(issuerId, ca, [certId], null);
  }

  private async answerParsed(issuerId: string, certIds: OcspCertId[], nonce: Buffer | null): Promise<OcspAnswer> {
    const cas = await this.casOf(issuerId);
    const matched = certIds.map((c) => cas.find((ca) => c.hash && ca.ids.has(`${c.hash}:${c.nameHash}:${c.keyHash}`)));
    // One response is signed by one responder: every CertID must name the same CA of this issuer.
    const ca = matched[0];
    if (!ca || matched.some((m) => m !== ca)) return UNAUTHORIZED();
    return this.answerFor(issuerId, ca, certIds, nonce);
  }

  private async answerFor(issuerId: string, ca: CaEntry, certIds: OcspCertId[], nonce: Buffer | null): Promise<OcspAnswer> {
    const now = Date.now();
    const single = certIds.length === 1 && !nonce;
    const cacheKey = `${issuerId}|${certIds[0].serialHex}`;
    const idKey = certIds[0].der.toString('base64');
    if (single) {
      const hit = this.answers.get(cacheKey)?.signed.get(idKey);
      if (hit && now < hit.refreshAt) {
        this.hits++;
        return { der: hit.der, cacheable: true, producedAt: hit.producedAt, nextUpdate: hit.expiresAt };
      }
    }
    const responses: OcspSingle[] = [];
    let nextUpdate = now + OCSP_VALIDITY_MS;
    let refreshAt = now + REFRESH_AFTER_MS;
    for (const c of certIds) {
      const status = await this.cachedStatus(issuerId, ca.id, c.serialHex, now);
      const validity = status.status === 'unknown' ? UNKNOWN_VALIDITY_MS : OCSP_VALIDITY_MS;
      if (status.status === 'unknown') refreshAt = Math.min(refreshAt, now + UNKNOWN_REFRESH_MS);
      nextUpdate = Math.min(nextUpdate, now + validity);
      responses.push({ certIdDer: c.der, ...status, thisUpdate: now, nextUpdate: now + validity });
    }
    const responder = await this.responders.forCa(ca, now);
    const der = Buffer.from(await this.k.crypto.signOcspResponse({
      responderCertPem: responder.certificate_pem, responderKeyPem: this.responders.keyOf(responder), producedAt: now, responses,
      ...(nonce ? { nonceExtension: nonce } : {}),
    }));
    this.signed++;
    const entry = single ? this.answers.get(cacheKey) : undefined;
    if (entry && entry.caId === ca.id) entry.signed.set(idKey, { der, producedAt: now, refreshAt, expiresAt: nextUpdate });
    return { der, cacheable: !nonce, producedAt: now, nextUpdate };
  }

  /**
   * A serial's status, from memory while fresh (statuses change on revocation, which
   * drops the entry, or when an unknown serial gets issued: unknown is re-read soon).
   * Concurrent misses for one serial share one lookup.
   */
  private async cachedStatus(issuerId: string, caId: string, serialHex: string, now: number): Promise<Status> {
    const key = `${issuerId}|${serialHex}`;
    const entry = this.answers.get(key);
    if (entry && entry.caId === caId && now < entry.statusUntil) return entry.status;
    const epoch = this.epoch;
    let pending = this.lookups.get(key);
    if (!pending) {
      pending = this.statusOf(issuerId, caId, serialHex).finally(() => this.lookups.delete(key));
      this.lookups.set(key, pending);
    }
    const status = await pending;
    if (epoch === this.epoch && (!this.answers.has(key) || this.answers.get(key)!.statusUntil <= now)) {
      if (this.answers.size >= MAX_CACHED) this.answers.delete(this.answers.keys().next().value!);
      this.answers.set(key, { caId, status, statusUntil: now + (status.status === 'unknown' ? UNKNOWN_REFRESH_MS : REFRESH_AFTER_MS), signed: new Map() });
    }
    return status;
  }

  private async statusOf(issuerId: string, caId: string, serialHex: string): Promise<Status> {
    const knex = this.k.db.knex;
    const revoked = (await knex('certificate_revocations').where({ issuer_id: issuerId, serial_number: serialHex })
      .where((w) => { w.where('ca_id', caId).orWhereNull('ca_id'); })
      .first('revoked_at', 'reason_code')) as { revoked_at: Date; reason_code: number } | undefined;
    if (revoked) return { status: 'revoked', revokedAt: new Date(revoked.revoked_at).getTime(), reasonCode: revoked.reason_code };
    const forms = [serialHex, serialHex.replace(/^0/, '')];
    const issued = await knex('certificate_versions as v').join('managed_certificates as c', 'c.id', 'v.certificate_id')
      .where('c.issuer_id', issuerId).whereRaw('lower(v.serial_number) in (?, ?)', forms).first('v.id');
    return { status: issued ? 'good' : 'unknown' };
  }

  /** The issuer's usable CAs (active first), with their CertID hashes. */
  async casOf(issuerId: string): Promise<CaEntry[]> {
    const hit = this.cas.get(issuerId);
    if (hit && Date.now() - hit.at < CA_CACHE_MS) return hit.list;
    const rows = (await this.k.db.knex('certificate_authorities').where({ issuer_id: issuerId }).whereIn('status', PUBLISHING_STATUSES)
      .orderByRaw(`CASE status WHEN 'active' THEN 0 ELSE 1 END`).orderBy('created_at', 'desc')
      .select('id', 'issuer_id', 'subject', 'not_after', 'certificate_pem')) as (Omit<CaEntry, 'ids' | 'nameDer' | 'keyBits'> & { certificate_pem: string })[];
    const list = rows.map(({ certificate_pem, ...r }) => ({ ...r, ...certIdInputs(certificate_pem) }));
    this.cas.set(issuerId, { at: Date.now(), list });
    return list;
  }
}
