import crypto, { X509Certificate } from 'node:crypto';
import * as pkijs from 'pkijs';
import type { CmsContentCipher, EnrollRequester, EnrollResult, Json, PluginContext, ProtocolHttpResponse } from '@certctl/sdk';
import { certRep, type FailInfo, type Outcome } from './cert-rep.js';
import { OID, pemDers, pkiFrom, stringOf } from './cms.js';
import { MESSAGE_TYPE, type PkiMessage } from './pki-message.js';
import type { ScepEndpoint } from './scep-config.js';

/*
 * PKIOperation requests (RFC 8894 3.3): PKCSReq (new enrolment, authorised by the
 * challenge password in the CSR), RenewalReq (signed by a current, unrevoked
 * certificate this server issued), and CertPoll (collecting a request that was PENDING approval).
 * The kernel decides (profile, policy, approval) and issues; this maps its answer
 * onto CertRep. State in ctx.kv, shared by every kernel:
 *   cert:<sha256 of an issued certificate> -> { certificateId }     (who may renew)
 *   pending:<sha256 of transactionID + signer key> -> { certificateId, csrPem, requester }
 *   once:<sha256 of challenge hash + key>  -> counter               (replay guard)
 */

const DAY_S = 86_400;
const MAX_TTL_S = 3650 * DAY_S;
const PENDING_TTL_S = 30 * DAY_S;
/** How long a (challenge, key) or (certificate, key) pair stays used. */
const ONCE_TTL_S = 365 * DAY_S;

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest();
const hex = (data: Buffer | string) => sha256(data).toString('hex');
/** Constant time: both sides are hashed first, so neither length nor content leaks through timing. */
const sameSecret = (a: string, b: string) => crypto.timingSafeEqual(sha256(a), sha256(b));

interface Csr {
  der: Buffer;
  /** The public key, DER SubjectPublicKeyInfo as OpenSSL normalises it. */
  spki: Buffer;
  commonName: string | null;
  challenge: string | null;
}

function readCsr(der: Buffer): Csr | null {
  const csr = pkiFrom(der, (schema) => new pkijs.CertificationRequest({ schema }));
  if (!csr) return null;
  try {
    const spki = crypto.createPublicKey({ key: Buffer.from(csr.subjectPublicKeyInfo.toSchema().toBER(false)), format: 'der', type: 'spki' }).export({ format: 'der', type: 'spki' });
    const cn = csr.subject.typesAndValues.find((tv) => tv.type === '2.5.4.3');
    const attr = csr.attributes?.find((a) => a.type === OID.challengePassword);
    return { der, spki, commonName: cn ? stringOf(cn.value) : null, challenge: attr?.values.length === 1 ? stringOf(attr.values[0]) : null };
  } catch {
    return null;
  }
}

const spkiOf = (cert: X509Certificate) => cert.publicKey.export({ format: 'der', type: 'spki' });
const toPem = (der: Buffer, label: string) => `-----BEGIN ${label}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

interface Pending {
  certificateId: string;
  csrPem: string;
  requester: EnrollRequester;
  /** The content cipher of the request, for the reply to a CertPoll (whose envelope is not opened). */
  cipher?: CmsContentCipher;
}

class Transaction {
  /** The content cipher the client encrypted with; the certificate goes back encrypted the same way. */
  cipher: CmsContentCipher = 'aes-256-cbc';

  constructor(readonly ctx: PluginContext, readonly ep: ScepEndpoint, readonly msg: PkiMessage, readonly remoteAddress: string) {}

  reply(outcome: Outcome) {
    return certRep(this.ctx, this.ep.issuerId, this.msg, outcome);
  }

  fail(failInfo: FailInfo, why: string, fields: Record<string, Json> = {}) {
    this.ctx.log.info('SCEP request refused', { reason: why, transaction_id: this.msg.transactionId.slice(0, 128), label: this.ep.label ?? 'default', remote_address: this.remoteAddress, ...fields });
    return this.reply({ status: 'FAILURE', failInfo });
  }

  /** A refusal worth an audit record (wrong or replayed challenge): the reason, never the secret. */
  async refuse(event: string, why: string): Promise<ProtocolHttpResponse> {
    this.ctx.log.warn('SCEP enrolment refused', { reason: why, transaction_id: this.msg.transactionId.slice(0, 128), label: this.ep.label ?? 'default', remote_address: this.remoteAddress });
    try {
      await this.ctx.events.emit(event, { reason: why, transaction_id: this.msg.transactionId.slice(0, 128), label: this.ep.label ?? 'default', remote_address: this.remoteAddress.slice(0, 64) });
    } catch (err) {
      // Without the `events` grant the refusal stays in the log only; the client's answer is the same.
      this.ctx.log.warn('SCEP refusal not recorded as an event', { error: String((err as Error)?.message ?? err).slice(0, 200) });
    }
    return this.reply({ status: 'FAILURE', failInfo: 'badRequest' });
  }

  /** A pending request belongs to its transactionID and to the key that signed it, which must sign the polls: another client cannot take or overwrite it. */
  get pendingKey() {
    return `pending:${hex(Buffer.concat([Buffer.from(this.msg.transactionId, 'utf8'), Buffer.from([0]), spkiOf(this.msg.signer)]))}`;
  }

  /**
   * Enrols (or collects) through the kernel and answers with its outcome. `claim`:
   * the replay-guard key this request took; given back when nothing was issued or
   * held (refused, or the CA failed), so the client may try again.
   */
  async enroll(csrPem: string, requester: EnrollRequester, opts: { certificateId?: string; claim?: string } = {}): Promise<ProtocolHttpResponse> {
    const { certificateId, claim } = opts;
    const { ctx, ep } = this;
    let result: EnrollResult;
    try {
      result = await ctx.issuance.enroll({ profileId: ep.profileId, issuerId: ep.issuerId, csrPem, requester, ...(certificateId ? { certificateId } : {}) });
    } catch (err) {
      // The kernel answers refusals and CA failures as results; a throw is the call itself
      // failing (e.g. its deadline). Give the claim back, or the device could not retry
      // with this key for a year.
      if (claim) await ctx.kv.delete(claim);
      throw err;
    }
    switch (result.status) {
      case 'issued': {
        const ttl = Math.min(MAX_TTL_S, Math.max(DAY_S, Math.ceil((Date.parse(result.notAfter) - ctx.clock.now()) / 1000) + 30 * DAY_S));
        const leaf = new X509Certificate(result.certificatePem);
        await ctx.kv.set(`cert:${hex(leaf.raw)}`, { certificateId: result.certificateId }, { ttlSeconds: ttl });
        await ctx.kv.delete(this.pendingKey);
        return this.reply({ status: 'SUCCESS', certificatesDer: [leaf.raw, ...pemDers(result.chainPem)], cipher: this.cipher });
      }
      case 'pending': {
        const pending: Pending = { certificateId: result.certificateId, csrPem, requester, cipher: this.cipher };
        await ctx.kv.set(this.pendingKey, pending as unknown as Json, { ttlSeconds: PENDING_TTL_S });
        return this.reply({ status: 'PENDING' });
      }
      case 'denied':
        await ctx.kv.delete(this.pendingKey);
        if (claim) await ctx.kv.delete(claim);
        return this.fail('badRequest', `the kernel refused the enrolment: ${result.reason.slice(0, 300)}`);
      case 'failed':
        if (claim) await ctx.kv.delete(claim);
        ctx.log.warn('SCEP enrolment failed', { reason: result.reason.slice(0, 500), retryable: result.retryable });
        return { status: 503, headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Retry-After': '60' }, body: 'the CA could not issue the certificate; try again later\n' };
    }
  }

  /** A PENDING request of this client (same transactionID, same signing key), or null. */
  async pendingOfSigner(): Promise<Pending | null> {
    return ((await this.ctx.kv.get(this.pendingKey)) as Pending | undefined) ?? null;
  }
}

async function challengeOf(ctx: PluginContext, ep: ScepEndpoint): Promise<string | undefined> {
  for (const path of ep.challengePaths) {
    const value = await ctx.secrets.get(path);
    if (value) return value;
  }
  return undefined;
}

async function pkcsReq(t: Transaction, csr: Csr): Promise<ProtocolHttpResponse> {
  const { ctx, ep, msg } = t;
  // The request is signed with the key being certified (a self-signed certificate): proof of possession, and whom to encrypt the answer for.
  if (!spkiOf(msg.signer).equals(csr.spki)) return t.fail('badRequest', 'the PKCSReq is not signed with the key of its CSR');
  const expected = await challengeOf(ctx, ep);
  if (!expected) return t.refuse('scep.challenge_refused', 'no challenge password is configured for this endpoint');
  // Both checks run whatever the first found, so a missing challenge costs the same as a wrong one.
  const given = csr.challenge ?? '';
  const match = sameSecret(given, expected) && csr.challenge !== null;
  if (!match) return t.refuse('scep.challenge_refused', csr.challenge === null ? 'the CSR has no challenge password' : 'wrong challenge password');

  const claim = `once:${hex(Buffer.concat([sha256(expected), csr.spki]))}`;
  const firstUse = (await ctx.kv.increment(claim, { ttlSeconds: ONCE_TTL_S })) === 1;
  if (!firstUse) {
    // The same client sending its PENDING request again (RFC 8894 3.3.3 allows polling so) collects it.
    const pending = await t.pendingOfSigner();
    if (pending) return t.enroll(pending.csrPem, pending.requester, { certificateId: pending.certificateId });
    return t.refuse('scep.replay_refused', 'this challenge password was already used for this key');
  }
  const requester: EnrollRequester = { kind: 'scep-challenge', id: (csr.commonName ?? msg.transactionId).slice(0, 200) || 'unknown' };
  return t.enroll(toPem(csr.der, 'CERTIFICATE REQUEST'), requester, { claim });
}

async function renewalReq(t: Transaction, csr: Csr): Promise<ProtocolHttpResponse> {
  const { ctx, ep, msg } = t;
  if (!ep.allowRenewal) return t.fail('badRequest', 'renewal is disabled on this endpoint');
  const known = (await ctx.kv.get(`cert:${hex(msg.signer.raw)}`)) as { certificateId?: string } | undefined;
  const now = ctx.clock.now();
  if (!known?.certificateId || Date.parse(msg.signer.validTo) < now || Date.parse(msg.signer.validFrom) > now) return t.fail('badCertId', 'the RenewalReq is not signed by a current certificate this server issued');
  // Revoked (that version or the whole certificate, e.g. for key compromise): its key no longer speaks for the client.
  const status = await ctx.issuance.certificateStatus({ certificateId: known.certificateId, serialNumber: msg.signer.serialNumber });
  if (!status || status.revoked) return t.fail('badCertId', 'the certificate signing the RenewalReq is revoked or no longer enrolled here');
  const claim = `once:${hex(Buffer.concat([msg.signer.raw, csr.spki]))}`;
  const firstUse = (await ctx.kv.increment(claim, { ttlSeconds: ONCE_TTL_S })) === 1;
  if (!firstUse) {
    const pending = await t.pendingOfSigner();
    if (pending && pending.certificateId === known.certificateId) return t.enroll(pending.csrPem, pending.requester, { certificateId: pending.certificateId });
    return t.refuse('scep.replay_refused', 'this certificate was already renewed with this key');
  }
  const name = /(?:^|\n)CN=([^\n]+)/.exec(msg.signer.subject)?.[1] ?? hex(msg.signer.raw);
  return t.enroll(toPem(csr.der, 'CERTIFICATE REQUEST'), { kind: 'scep-certificate', id: name.slice(0, 200) }, { certificateId: known.certificateId, claim });
}

async function certPoll(t: Transaction): Promise<ProtocolHttpResponse> {
  const pending = await t.pendingOfSigner();
  if (!pending) return t.fail('badCertId', 'no pending request of this client has this transactionID');
  if (pending.cipher) t.cipher = pending.cipher;
  return t.enroll(pending.csrPem, pending.requester, { certificateId: pending.certificateId });
}

/** Answers one verified-to-parse pkiMessage with a CertRep. */
export async function pkiOperation(ctx: PluginContext, ep: ScepEndpoint, msg: PkiMessage, remoteAddress: string): Promise<ProtocolHttpResponse> {
  const t = new Transaction(ctx, ep, msg, remoteAddress);
  if (!msg.signatureOk) return t.fail('badMessageCheck', 'the pkiMessage signature does not verify');
  if (msg.signer.publicKey.asymmetricKeyType !== 'rsa') return t.fail('badAlg', 'the answer is encrypted for the signer\'s certificate, which must hold an RSA key');
  if (msg.messageType === MESSAGE_TYPE.CertPoll) return certPoll(t);
  if (msg.messageType !== MESSAGE_TYPE.PKCSReq && msg.messageType !== MESSAGE_TYPE.RenewalReq) return t.fail('badRequest', `messageType ${msg.messageType} is not supported`);
  if (!msg.content) return t.fail('badMessageCheck', 'the request carries no EnvelopedData');

  const opened = await ctx.issuance.raDecrypt({ issuerId: ep.issuerId, envelopedDataBase64: msg.content.toString('base64') });
  if (!opened.ok) return t.fail(opened.code === 'bad_alg' ? 'badAlg' : 'badMessageCheck', `the EnvelopedData cannot be opened: ${opened.reason}`);
  t.cipher = opened.contentCipher;
  const csr = readCsr(Buffer.from(opened.contentBase64, 'base64'));
  if (!csr) return t.fail('badRequest', 'the enveloped content is not a PKCS#10 request');
  return msg.messageType === MESSAGE_TYPE.PKCSReq ? pkcsReq(t, csr) : renewalReq(t, csr);
}
