import type { EnrollRevokeRequest, EnrollRevokeResult, Json } from '@certctl/sdk';
import type { KernelServices } from '../kernel-services.js';
import type { IssuanceOps } from '../plugins/broker/capability-broker.js';
import { PluginCallError, type BrokerCallContext } from '../plugins/host/contracts.js';
import type { CertificateRow } from '../resources/certificates/certificate-model.js';
import { canonicalReason } from '../revocation/reasons.js';
import { revokeCertificates } from '../revocation/revoke-service.js';
import { parseCaChainRequest, parseEnrollRequest, parseRevokeRequest } from './enroll-request.js';
import { checkDns01 } from './acme-dns01.js';
import { checkTlsAlpn01 } from './acme-tlsalpn01.js';
import { checkHttp01 } from './http01.js';
import { enroll, protocolActor } from './protocol-enroll.js';
import { RaOps, type RaOp } from './ra-ops.js';
import { enrolledStatus, parseStatusRequest } from './enrolled-status.js';

/** Time the kernel keeps for itself when an enrolment runs inside a protocol call's deadline. */
const MARGIN_MS = 500;

/**
 * The kernel side of ctx.issuance. The broker has checked the `issuance` grant;
 * this checks that the caller is a protocol plugin, rebuilds the request from
 * known fields, and answers with the contract's result shapes. KernelServices
 * come through a getter because the broker is built before them.
 */
export class ProtocolIssuanceOps implements IssuanceOps {
  constructor(private readonly services: () => KernelServices) {}

  /** The RA of each issuer (SCEP): its key stays in the kernel (ra-keystore.ts). */
  private ra: RaOps | null = null;

  async handle(ctx: BrokerCallContext, op: 'issuance.enroll' | 'issuance.revoke' | 'issuance.caChain' | 'issuance.checkHttp01' | 'issuance.checkDns01' | 'issuance.checkTlsAlpn01' | 'issuance.certificateStatus' | RaOp, request: Json): Promise<Json> {
    const k = this.services();
    const refuse = (message: string) => new PluginCallError('capability_denied', `${op}: ${message}`, ctx.pluginId);
    if (k.plugins.get(ctx.pluginId)?.kind !== 'protocol') throw refuse('only protocol plugins enrol through the kernel');
    const timeoutMs = Math.max(1000, ctx.deadline - Date.now() - MARGIN_MS);
    switch (op) {
      case 'issuance.enroll': {
        const parsed = parseEnrollRequest(request);
        if (!parsed.ok) return { status: 'denied', reason: parsed.problem };
        return (await enroll(k, ctx.pluginId, parsed.value, timeoutMs)) as unknown as Json;
      }
      case 'issuance.revoke': {
        const parsed = parseRevokeRequest(request);
        if (!parsed.ok) return { status: 'failed', reason: parsed.problem };
        return (await revokeEnrolled(k, ctx.pluginId, parsed.value)) as unknown as Json;
      }
      case 'issuance.raCertificate':
      case 'issuance.raDecrypt':
      case 'issuance.raSign': {
        this.ra ??= new RaOps(this.services);
        return this.ra.handle(ctx.pluginId, op, request, refuse, (issuerId) => issuerChain(k, issuerId, timeoutMs));
      }
      case 'issuance.caChain': {
        const parsed = parseCaChainRequest(request);
        if (!parsed.ok) throw refuse(parsed.problem);
        return { chainPem: await issuerChain(k, parsed.value.issuerId, timeoutMs) };
      }
      case 'issuance.certificateStatus': {
        const parsed = parseStatusRequest(request);
        if (!parsed.ok) throw refuse(parsed.problem);
        return (await enrolledStatus(k, ctx.pluginId, parsed.value)) as unknown as Json;
      }
      case 'issuance.checkHttp01':
      case 'issuance.checkDns01':
      case 'issuance.checkTlsAlpn01': {
        const check = op === 'issuance.checkHttp01' ? checkHttp01 : op === 'issuance.checkDns01' ? checkDns01 : checkTlsAlpn01;
        const outcome = await check(request, ctx.deadline);
        if ('problem' in outcome) throw refuse(outcome.problem);
        return outcome;
      }
    }
  }
}

/** Revokes a certificate the calling protocol enrolled (CRL and OCSP answer for it once this commits). */
async function revokeEnrolled(k: KernelServices, pluginId: string, req: EnrollRevokeRequest): Promise<EnrollRevokeResult> {
  return k.db.knex.transaction(async (trx) => {
    const cert = (await trx('managed_certificates').where({ id: req.certificateId }).forUpdate().first()) as CertificateRow | undefined;
    const tags = (typeof cert?.tags === 'string' ? JSON.parse(cert.tags) : cert?.tags) as Record<string, string> | undefined;
    if (!cert || tags?.protocol !== pluginId) return { status: 'failed', reason: `certificate ${req.certificateId} was not enrolled through ${pluginId}` };
    if (cert.status === 'Revoked') return { status: 'failed', reason: `certificate ${cert.id} is already revoked` };
    if (!cert.serial_number) return { status: 'failed', reason: `certificate ${cert.id} was never issued` };
    const requester = tags.requester ?? 'unknown:unknown';
    const at = requester.indexOf(':');
    const actor = protocolActor(pluginId, { kind: requester.slice(0, at), id: requester.slice(at + 1) });
    await revokeCertificates(k, trx, [cert], { reason: canonicalReason(req.reason), actor, now: new Date() });
    return { status: 'revoked' };
  });
}

/** The issuer's CA chain (issuing CA first) from its plugin's getCaChain. */
async function issuerChain(k: KernelServices, issuerId: string, timeoutMs: number): Promise<string[]> {
  const issuer = (await k.db.knex('issuers').where({ id: issuerId }).first('id', 'type', 'enabled')) as { id: string; type: string; enabled: boolean } | undefined;
  if (!issuer) throw new Error(`issuer ${issuerId} does not exist`);
  if (!issuer.enabled) throw new Error(`issuer ${issuerId} is disabled`);
  const result = (await k.pluginHost.call(issuer.type, issuer.id, 'getCaChain', {}, { timeoutMs })) as { chainPem: string[] };
  return result.chainPem;
}
