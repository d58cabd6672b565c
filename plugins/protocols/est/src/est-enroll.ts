import { createHash, X509Certificate } from 'node:crypto';
import type { EnrollRequester, EnrollResult, PluginContext, ProtocolHttpRequest, ProtocolHttpResponse } from '@certctl/sdk';
import { pemBlocks, toPem } from './der.js';
import { authenticate, certificateName, clientCertificate, fingerprintOf } from './est-auth.js';
import type { EstEndpoint } from './est-config.js';
import { decodeCsrBody } from './csr-body.js';
import { mediaType, pkcs7Response, textError } from './http.js';
import { base64Lines, certsOnly } from './pkcs7.js';

/*
 * simpleenroll / simplereenroll (RFC 7030 4.2). The kernel decides (profile,
 * policy, approval); this maps its answer onto EST: 200 with the certificate,
 * 202 + Retry-After while it waits (the client sends the same CSR again), 4xx
 * when refused. State in ctx.kv, shared by every kernel:
 *   cert:<sha256 of an issued certificate> -> { certificateId }  (who may re-enrol)
 *   pending:<sha256 of a CSR>              -> { certificateId }  (a request to collect)
 */

const CSR_TYPES = new Set(['application/pkcs10', 'application/x-pem-file']);
const DAY_S = 86_400;
const MAX_TTL_S = 3650 * DAY_S;
const PENDING_TTL_S = 30 * DAY_S;

type Decoded = { ok: true; der: Buffer } | { ok: false; response: ProtocolHttpResponse };

/** The CSR of an enrolment body, or the EST error for it (415 wrong type, 400 not a CSR). */
export function readCsr(req: ProtocolHttpRequest): Decoded {
  const type = mediaType(req.headers['content-type']);
  if (!CSR_TYPES.has(type)) return { ok: false, response: textError(415, 'the request body must be a PKCS#10 request (Content-Type: application/pkcs10)') };
  const der = decodeCsrBody(Buffer.from(req.body, 'base64'));
  if (!der) return { ok: false, response: textError(400, 'the body is not a base64 DER or PEM PKCS#10 request') };
  return { ok: true, der };
}

const sha256Hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Remembers an issued certificate so its holder may re-enrol with it. */
export async function rememberIssued(ctx: PluginContext, result: Extract<EnrollResult, { status: 'issued' }>): Promise<void> {
  const cert = new X509Certificate(result.certificatePem);
  const ttl = Math.min(MAX_TTL_S, Math.max(DAY_S, Math.ceil((Date.parse(result.notAfter) - ctx.clock.now()) / 1000) + 30 * DAY_S));
  await ctx.kv.set(`cert:${fingerprintOf(cert)}`, { certificateId: result.certificateId }, { ttlSeconds: ttl });
}

/** Enrols (or collects) and turns the kernel's answer into an EST response; `issued` gets the certificate's DER. */
export async function enrollCsr(
  ctx: PluginContext, ep: EstEndpoint, csrDer: Buffer, requester: EnrollRequester, certificateId: string | undefined,
): Promise<{ response: ProtocolHttpResponse; issued?: Extract<EnrollResult, { status: 'issued' }> }> {
  const pendingKey = `pending:${sha256Hex(csrDer)}`;
  const pending = (await ctx.kv.get(pendingKey)) as { certificateId?: string } | undefined;
  const result = await ctx.issuance.enroll({
    profileId: ep.profileId,
    issuerId: ep.issuerId,
    csrPem: toPem(csrDer, 'CERTIFICATE REQUEST'),
    requester,
    ...(pending?.certificateId ? { certificateId: pending.certificateId } : certificateId ? { certificateId } : {}),
  });
  switch (result.status) {
    case 'issued': {
      await rememberIssued(ctx, result);
      if (pending) await ctx.kv.delete(pendingKey);
      const der = pemBlocks(result.certificatePem, 'CERTIFICATE');
      return { response: pkcs7Response(base64Lines(certsOnly(der))), issued: result };
    }
    case 'pending':
      await ctx.kv.set(pendingKey, { certificateId: result.certificateId }, { ttlSeconds: PENDING_TTL_S });
      return { response: { status: 202, headers: { 'Retry-After': String(Math.max(1, Math.round(result.retryAfterSeconds))), 'Content-Type': 'text/plain; charset=utf-8' }, body: 'the request is waiting for approval; send the same request again later\n' } };
    case 'denied':
      if (pending) await ctx.kv.delete(pendingKey);
      ctx.log.info('EST enrolment refused', { requester: `${requester.kind}:${requester.id}`, reason: result.reason.slice(0, 500) });
      return { response: textError(403, `enrolment refused: ${result.reason}`) };
    case 'failed':
      ctx.log.warn('EST enrolment failed', { requester: `${requester.kind}:${requester.id}`, reason: result.reason.slice(0, 500), retryable: result.retryable });
      return { response: result.retryable ? textError(503, 'the CA is not available; try again later', { 'Retry-After': '60' }) : textError(502, 'the CA could not issue the certificate') };
  }
}

export async function simpleEnroll(req: ProtocolHttpRequest, ep: EstEndpoint, ctx: PluginContext): Promise<ProtocolHttpResponse> {
  const auth = await authenticate(req, ep, ctx);
  if (!auth.ok) return auth.response;
  const csr = readCsr(req);
  if (!csr.ok) return csr.response;
  return (await enrollCsr(ctx, ep, csr.der, auth.requester, undefined)).response;
}

/**
 * Re-enrolment is authenticated by the certificate being renewed (the TLS client
 * certificate); it must be one this server issued, which also names the managed
 * certificate the kernel renews (under that certificate's own issuer and profile).
 */
export async function simpleReenroll(req: ProtocolHttpRequest, ep: EstEndpoint, ctx: PluginContext): Promise<ProtocolHttpResponse> {
  const cert = clientCertificate(req);
  if (!cert) return textError(403, 'simplereenroll needs the certificate being renewed as the TLS client certificate');
  const known = (await ctx.kv.get(`cert:${fingerprintOf(cert)}`)) as { certificateId?: string } | undefined;
  const now = ctx.clock.now();
  if (!known?.certificateId || Date.parse(cert.validTo) < now) return textError(403, 'the client certificate is not a current certificate issued by this EST server');
  const csr = readCsr(req);
  if (!csr.ok) return csr.response;
  return (await enrollCsr(ctx, ep, csr.der, { kind: 'est-client-cert', id: certificateName(cert) }, known.certificateId)).response;
}
