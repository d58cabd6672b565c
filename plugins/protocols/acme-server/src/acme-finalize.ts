import { X509Certificate } from 'node:crypto';
import type { EnrollResult, ProtocolHttpResponse } from '@certctl/sdk';
import { authenticate } from './acme-auth.js';
import { fail, json, problem, type AcmeRequest } from './acme-http.js';
import { orderJson, ownOrder } from './acme-orders.js';
import type { AcmeState, Order } from './acme-state.js';
import { csrNames } from './csr-names.js';

/*
 * Finalize, order polling, certificate download and revocation (RFC 8555 7.4,
 * 7.4.2, 7.6). Issuance is the kernel's (ctx.issuance.enroll, requester = the
 * account): a pending answer (approval) leaves the order `processing`, and each
 * poll asks the kernel again with the same CSR until it is issued or refused.
 */

const DAY_S = 86_400;
const toPem = (der: Buffer) => `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`;

/** The CSR must ask for exactly the order's identifiers (a CN, if any, being one of them). */
function csrMatchesOrder(der: Buffer, order: Order): string | null {
  const names = csrNames(der);
  if (!names) return 'the CSR is not a well-formed PKCS#10 request';
  const wanted = new Set(order.identifiers.map((i) => `${i.type}:${i.value}`));
  const asked = new Set([...names.dns.map((d) => `dns:${d}`), ...names.ips.map((i) => `ip:${i}`)]);
  if (names.commonName && !wanted.has(`dns:${names.commonName}`) && !wanted.has(`ip:${names.commonName}`)) return `the CSR common name ${names.commonName} is not in the order`;
  if (names.commonName && !asked.has(`dns:${names.commonName}`) && !asked.has(`ip:${names.commonName}`)) asked.add(wanted.has(`dns:${names.commonName}`) ? `dns:${names.commonName}` : `ip:${names.commonName}`);
  const missing = [...wanted].filter((w) => !asked.has(w));
  const extra = [...asked].filter((a) => !wanted.has(a));
  if (missing.length || extra.length) return `the CSR names must be the order's identifiers${missing.length ? `; missing ${missing.join(', ')}` : ''}${extra.length ? `; not ordered ${extra.join(', ')}` : ''}`;
  return null;
}

/** Applies one kernel answer to the order (and stores the chain once issued). */
async function settle(r: AcmeRequest, state: AcmeState, id: string, order: Order, result: EnrollResult): Promise<Order> {
  const next: Order = { ...order };
  switch (result.status) {
    case 'issued': {
      next.status = 'valid';
      next.certificateId = result.certificateId;
      const ttl = Math.max(DAY_S, Math.ceil((Date.parse(result.notAfter) - r.ctx.clock.now()) / 1000) + 30 * DAY_S);
      const serial = new X509Certificate(result.certificatePem).serialNumber.toLowerCase().replace(/^0+/, '');
      await state.saveChain(id, { pem: [result.certificatePem, ...result.chainPem].map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join(''), certificateId: result.certificateId, account: order.account }, serial, ttl);
      break;
    }
    case 'pending':
      next.status = 'processing';
      next.certificateId = result.certificateId;
      break;
    case 'denied':
      next.status = 'invalid';
      next.error = { type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: result.reason.slice(0, 500) };
      break;
    case 'failed':
      // Retryable failures leave the order where it was, for the client to finalize again.
      if (!result.retryable) {
        next.status = 'invalid';
        next.error = { type: 'urn:ietf:params:acme:error:serverInternal', detail: result.reason.slice(0, 500) };
      }
      break;
  }
  await state.saveOrder(id, next);
  return next;
}

const enrollFor = (r: AcmeRequest, order: Order, csrPem: string, accountId: string) => r.ctx.issuance.enroll({
  profileId: r.profileId, issuerId: r.issuerId, csrPem, requester: { kind: 'acme-account', id: accountId },
  ...(order.certificateId ? { certificateId: order.certificateId } : {}),
  ...(order.notAfter ? { notAfter: order.notAfter } : {}),
});

export async function finalize(r: AcmeRequest, state: AcmeState, id: string): Promise<ProtocolHttpResponse> {
  const { accountId, order, payload } = await ownOrder(r, state, id);
  if (order.status !== 'ready') return fail('orderNotReady', `the order is ${order.status}`, 403);
  const csr = (payload as { csr?: unknown } | null)?.csr;
  if (typeof csr !== 'string' || !/^[A-Za-z0-9_-]+$/.test(csr)) return fail('malformed', 'csr must be the base64url DER of a PKCS#10 request');
  const der = Buffer.from(csr, 'base64url');
  const mismatch = csrMatchesOrder(der, order);
  if (mismatch) return fail('badCSR', mismatch);
  const csrPem = toPem(der);
  const result = await enrollFor(r, order, csrPem, accountId);
  if (result.status === 'failed' && result.retryable) return problem('serverInternal', 'the CA is not available; finalize again later', 503, {}, { 'Retry-After': '30' });
  if (result.status === 'denied') r.ctx.log.info('ACME order refused', { order: id, reason: result.reason.slice(0, 300) });
  const next = await settle(r, state, id, { ...order, csrPem }, result);
  return json(200, orderJson(r, id, next), { Location: `${r.root}/order/${id}`, ...(next.status === 'processing' ? { 'Retry-After': '30' } : {}) });
}

export async function getOrder(r: AcmeRequest, state: AcmeState, id: string): Promise<ProtocolHttpResponse> {
  const { accountId, order } = await ownOrder(r, state, id);
  let current = order;
  if (order.status === 'processing' && order.csrPem) current = await settle(r, state, id, order, await enrollFor(r, order, order.csrPem, accountId));
  return json(200, orderJson(r, id, current), current.status === 'processing' ? { 'Retry-After': '30' } : {});
}

export async function getCertificate(r: AcmeRequest, state: AcmeState, id: string): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'kid');
  const chain = await state.chain(id);
  if (!chain || chain.account !== auth.accountId) return fail('malformed', 'no such certificate', 404);
  return { status: 200, headers: { 'Content-Type': 'application/pem-certificate-chain' }, body: chain.pem };
}

const REASONS: Record<number, string> = { 0: 'unspecified', 1: 'keyCompromise', 3: 'affiliationChanged', 4: 'superseded', 5: 'cessationOfOperation', 9: 'privilegeWithdrawn' };

/**
 * revoke-cert (RFC 8555 7.6): signed with the key of the account that ordered the
 * certificate (kid), or with the certificate's own key (jwk: whoever holds the
 * private key may always revoke, e.g. after a compromise).
 */
export async function revokeCert(r: AcmeRequest, state: AcmeState): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(r, state, 'either');
  const p = (auth.payload ?? {}) as { certificate?: unknown; reason?: unknown };
  if (typeof p.certificate !== 'string') return fail('malformed', 'certificate must be the base64url DER of the certificate');
  if (p.reason !== undefined && !(typeof p.reason === 'number' && Object.hasOwn(REASONS, p.reason))) return fail('badRevocationReason', 'reason must be 0, 1, 3, 4, 5 or 9');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(p.certificate, 'base64url'));
  } catch {
    return fail('malformed', 'certificate is not a DER certificate');
  }
  const ref = await state.serial(cert.serialNumber.toLowerCase().replace(/^0+/, ''));
  const chain = ref ? await state.chain(ref.order) : undefined;
  const allowed = auth.by === 'kid' ? chain?.account === auth.accountId : cert.publicKey.equals(auth.key);
  if (!chain || !allowed) return fail('unauthorized', auth.by === 'kid' ? 'this account did not order that certificate' : 'the request is not signed with the certificate key', 403);
  const result = await r.ctx.issuance.revoke({ certificateId: chain.certificateId, reason: REASONS[(p.reason as number | undefined) ?? 0] });
  if (result.status === 'failed') return fail(/already revoked/.test(result.reason) ? 'alreadyRevoked' : 'malformed', result.reason);
  return { status: 200 };
}
