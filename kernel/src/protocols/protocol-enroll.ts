import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { EnrollRequest, EnrollResult } from '@certctl/sdk';
import type { AuditActor } from '../audit/audit-log.js';
import { newId } from '../db/ids.js';
import { OPEN_JOB_STATUSES, type JobRow } from '../jobs/job-states.js';
import type { KernelServices } from '../kernel-services.js';
import { IssuanceError } from '../lifecycle/issuance-failure.js';
import { enqueueIssuingJobs, openIssuingJobs } from '../lifecycle/issuance-jobs.js';
import { issueCertificate, type IssueOutcome } from '../lifecycle/issuance-service.js';
import type { CertificateRow } from '../resources/certificates/certificate-model.js';
import { pemCertificates } from '../crypto/der.js';
import { canonicalSerial } from '../revocation/leaf-facts.js';

/*
 * ctx.issuance.enroll: a protocol server (EST, SCEP, ACME) asks the kernel for a
 * certificate on behalf of a client it authenticated. The kernel keeps one managed
 * certificate per enrolment (tagged with the protocol and the requester), so
 * protocol-issued certificates show in the inventory, the audit trail and the
 * revocation lists like any other, and the issuance service applies the profile,
 * the policies and approvals. A re-enrolment names the certificate it renews.
 */

/** How soon a client should ask again about an enrolment that waits (approval, a CA order). */
const PENDING_RETRY_SECONDS = 60;

type Cert = CertificateRow & { tags: Record<string, string> };

/** The audit actor of an enrolment: the protocol and whom it authenticated. */
export const protocolActor = (pluginId: string, requester: EnrollRequest['requester']): AuditActor => ({
  actor: `${pluginId}/${requester.kind}:${requester.id}`.slice(0, 300),
  actor_type: 'protocol',
});

const denied = (reason: string): EnrollResult => ({ status: 'denied', reason });

/**
 * The renewal policy of protocol-enrolled certificates: the client renews them
 * (EST simplereenroll, a new ACME order), so the kernel's expiry loop must not
 * open Renewal jobs of its own (they would have no CSR, or a key the client never
 * gets, and would block the client's re-enrolment). Expiry alerts still apply.
 */
export const CLIENT_RENEWED_POLICY = 'rp-client-renewed';

async function clientRenewedPolicy(trx: Knex.Transaction): Promise<string> {
  await trx('renewal_policies').insert({ id: CLIENT_RENEWED_POLICY, name: 'Renewed by the client (enrolment protocols)', auto_renew: false }).onConflict().ignore();
  return CLIENT_RENEWED_POLICY;
}

/** The CSR subject's common name, or its first SAN. */
function nameOf(subject: string, sans: string[]): string | null {
  const cn = /(?:^|,\s*)CN=((?:\\.|[^,])+)/i.exec(subject)?.[1]?.replace(/\\(.)/g, '$1').trim();
  return cn || sans[0] || null;
}

export async function enroll(k: KernelServices, pluginId: string, req: EnrollRequest, timeoutMs: number): Promise<EnrollResult> {
  const actor = protocolActor(pluginId, req.requester);
  try {
    if (req.certificateId) return await enrollAgain(k, pluginId, req, actor, timeoutMs);
    return await enrollNew(k, pluginId, req, actor, timeoutMs);
  } catch (err) {
    if (err instanceof IssuanceError) {
      if (err.kind === 'refused' || err.kind === 'denied') return denied(err.message);
      return { status: 'failed', reason: err.message, retryable: err.retryable };
    }
    k.log.error({ plugin_id: pluginId, err }, 'protocol enrolment failed in the kernel');
    return { status: 'failed', reason: 'the kernel could not complete the enrolment; see the kernel log', retryable: true };
  }
}

async function enrollNew(k: KernelServices, pluginId: string, req: EnrollRequest, actor: AuditActor, timeoutMs: number): Promise<EnrollResult> {
  const knex = k.db.knex;
  const issuer = (await knex('issuers').where({ id: req.issuerId }).first('id', 'enabled')) as { id: string; enabled: boolean } | undefined;
  if (!issuer) return denied(`issuer ${req.issuerId} does not exist`);
  if (!issuer.enabled) return denied(`issuer ${req.issuerId} is disabled`);
  let requiresApproval = false;
  if (req.profileId !== null) {
    const profile = (await knex('certificate_profiles').where({ id: req.profileId }).first('id', 'enabled', 'requires_approval')) as { enabled: boolean; requires_approval: boolean } | undefined;
    if (!profile) return denied(`profile ${req.profileId} does not exist`);
    if (!profile.enabled) return denied(`profile ${req.profileId} is disabled`);
    requiresApproval = profile.requires_approval;
  }
  const csr = await k.crypto.verifyCsr(req.csrPem);
  if (!csr.valid) return denied(`the CSR is not valid: ${csr.reason ?? 'unreadable'}`);
  const name = nameOf(csr.subject, csr.sans);
  if (!name) return denied('the CSR names no subject common name and no subject alternative name');

  const certificateId = newId('certificate');
  const now = new Date();
  const job = await knex.transaction(async (trx) => {
    const [cert] = (await trx('managed_certificates').insert({
      id: certificateId,
      name: `${pluginId}: ${name}`.slice(0, 200),
      common_name: name,
      sans: JSON.stringify(csr.sans),
      status: 'Pending',
      issuer_id: req.issuerId,
      profile_id: req.profileId,
      renewal_policy_id: await clientRenewedPolicy(trx),
      tags: JSON.stringify({ protocol: pluginId, requester: `${req.requester.kind}:${req.requester.id}`.slice(0, 300) }),
      created_at: now,
      updated_at: now,
    }).returning('*')) as Cert[];
    await k.audit.append({
      category: 'lifecycle', ...actor, action: 'certificate_created', resource_type: 'certificate', resource_id: certificateId,
      details: { common_name: name, issuer_id: req.issuerId, profile_id: req.profileId, protocol: pluginId, requester_kind: req.requester.kind },
    }, trx);
    return requiresApproval ? queueWithCsr(k, trx, cert, 'Issuance', req, actor, null) : null;
  });
  if (job) return pendingFor(knex, certificateId, job);
  return issueNow(k, certificateId, 'Issuance', req, actor, timeoutMs, true);
}

/** A re-enrolment of a certificate this protocol enrolled, or the collection of an earlier pending one. */
async function enrollAgain(k: KernelServices, pluginId: string, req: EnrollRequest, actor: AuditActor, timeoutMs: number): Promise<EnrollResult> {
  const knex = k.db.knex;
  const id = req.certificateId!;
  const cert = (await knex('managed_certificates').where({ id }).first()) as Cert | undefined;
  const tags = typeof cert?.tags === 'string' ? (JSON.parse(cert.tags) as Record<string, string>) : cert?.tags;
  if (!cert || tags?.protocol !== pluginId) return denied(`certificate ${id} was not enrolled through ${pluginId}`);

  if (cert.status === 'Revoked' || cert.status === 'Archived') return denied(`certificate ${id} is ${cert.status}`);
  // The same CSR again: the client is collecting what an earlier pending request produced (a
  // version a job issued). A byte-identical CSR of a direct issuance is a renewal with the same key.
  const version = (await knex('certificate_versions').where({ certificate_id: id, csr_pem: req.csrPem }).whereNotNull('job_id')
    .orderBy('created_at', 'desc').first('pem_chain')) as { pem_chain: string } | undefined;
  if (version) return issuedFrom(id, version.pem_chain);
  const earlier = (await knex('jobs').where({ certificate_id: id }).whereIn('type', ['Issuance', 'Renewal'])
    .whereRaw("payload->>'csr_pem' = ?", [req.csrPem]).orderBy('created_at', 'desc').first()) as JobRow | undefined;
  if (earlier) {
    if ((OPEN_JOB_STATUSES as readonly string[]).includes(earlier.status)) return pendingFor(knex, id, earlier);
    return denied(`the enrolment was not granted: ${earlier.last_error ?? earlier.status}`);
  }

  // What the certificate is issued under is the certificate's own issuer and profile, not the request's.
  const type = cert.serial_number ? 'Renewal' : 'Issuance';
  const job = await knex.transaction(async (trx) => {
    const locked = (await trx('managed_certificates').where({ id }).forUpdate().first('id', 'profile_id', 'agent_id')) as Cert;
    if ((await openIssuingJobs(trx, [id])).size) throw new IssuanceError(`certificate ${id} already has an issuance in progress`, true, 'transient');
    const needsApproval = locked.profile_id
      ? Boolean(((await trx('certificate_profiles').where({ id: locked.profile_id }).first('requires_approval')) as { requires_approval?: boolean } | undefined)?.requires_approval)
      : false;
    return needsApproval ? queueWithCsr(k, trx, locked, type, req, actor, null) : null;
  });
  if (job) return pendingFor(knex, id, job);
  return issueNow(k, id, type, req, actor, timeoutMs);
}

/** `created`: this call made the managed certificate (a first enrolment), so a refusal takes it away again. */
async function issueNow(k: KernelServices, certificateId: string, type: 'Issuance' | 'Renewal', req: EnrollRequest, actor: AuditActor, timeoutMs: number, created = false): Promise<EnrollResult> {
  let outcome: IssueOutcome;
  try {
    outcome = await issueCertificate(k, {
      certificateId, type, csrPem: req.csrPem, actor, timeoutMs,
      requestedNotAfter: req.notAfter ? new Date(req.notAfter) : null,
      details: { protocol: actor.actor.split('/')[0], requester_kind: req.requester.kind },
    });
  } catch (err) {
    if (type === 'Issuance') await settleFailedFirst(k, certificateId, err, actor, created);
    throw err;
  }
  if (outcome.status === 'pending') {
    // The CA took an order: an Issuance/Renewal job follows it up (checkOrder); the client asks again.
    const orderId = outcome.orderId;
    await k.db.knex.transaction(async (trx) => {
      const cert = (await trx('managed_certificates').where({ id: certificateId }).first()) as Cert;
      await queueWithCsr(k, trx, cert, type, req, actor, orderId);
    });
    return { status: 'pending', certificateId, retryAfterSeconds: Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)) };
  }
  const version = (await k.db.knex('certificate_versions').where({ id: outcome.versionId }).first('pem_chain')) as { pem_chain: string };
  return issuedFrom(certificateId, version.pem_chain);
}

/**
 * A first issuance that got no certificate. Refused by the kernel or denied by the
 * CA (profile, policy, the CA's own no) on the enrolment that made the managed
 * certificate: the row goes, with what hangs off it (policy violations,
 * notifications: ON DELETE CASCADE), in one transaction with an audit event of the
 * refusal, so clients retrying refused requests do not fill the inventory. Any
 * other failure (the CA unreachable, a faulty CA answer) leaves it Failed, its
 * audit trail explaining why.
 */
async function settleFailedFirst(k: KernelServices, certificateId: string, err: unknown, actor: AuditActor, created: boolean): Promise<void> {
  const refusal = created && err instanceof IssuanceError && (err.kind === 'refused' || err.kind === 'denied');
  await k.db.knex.transaction(async (trx) => {
    const pending = trx('managed_certificates').where({ id: certificateId, status: 'Pending' }).whereNull('serial_number');
    if (!refusal) {
      await pending.update({ status: 'Failed', updated_at: new Date() });
      return;
    }
    if (!(await pending.delete())) return;
    await k.audit.append({
      category: 'lifecycle', ...actor, action: 'certificate_enrolment_refused', resource_type: 'certificate', resource_id: certificateId,
      details: { reason: (err as IssuanceError).message.slice(0, 1000), kind: (err as IssuanceError).kind },
    }, trx);
  });
}

/**
 * An Issuance/Renewal job carrying the client's CSR: held for approval when the
 * profile asks for it (the job handler issues once approved), or following a CA order.
 */
async function queueWithCsr(k: KernelServices, trx: Knex.Transaction, cert: Cert, type: 'Issuance' | 'Renewal', req: EnrollRequest, actor: AuditActor, orderId: string | null): Promise<JobRow> {
  const [job] = await enqueueIssuingJobs(k, trx, [{ id: cert.id, agent_id: null, profile_id: cert.profile_id }], type, { actor, trigger: 'protocol' });
  const patch = { csr_pem: req.csrPem, ...(req.notAfter ? { not_after: req.notAfter } : {}), ...(orderId ? { order_id: orderId } : {}) };
  await trx('jobs').where({ id: job.id }).update({ payload: trx.raw('payload || ?::jsonb', [JSON.stringify(patch)]) });
  return job;
}

async function pendingFor(knex: Knex, certificateId: string, job: JobRow): Promise<EnrollResult> {
  const approval = (await knex('approval_requests').where({ job_id: job.id, status: 'pending' }).first('id')) as { id: string } | undefined;
  return { status: 'pending', certificateId, retryAfterSeconds: PENDING_RETRY_SECONDS, ...(approval ? { approvalId: approval.id } : {}) };
}

function issuedFrom(certificateId: string, pemChain: string): EnrollResult {
  const [leaf, ...chain] = pemCertificates(pemChain);
  const x509 = new crypto.X509Certificate(leaf);
  return {
    status: 'issued', certificateId, certificatePem: leaf, chainPem: chain,
    serialNumber: canonicalSerial(x509.serialNumber),
    notAfter: new Date(x509.validTo).toISOString(),
  };
}
