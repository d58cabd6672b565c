import type { Knex } from 'knex';
import type { IssueRequest, IssueResult, Json } from '@certctl/sdk';
import { SYSTEM_ACTOR, type AuditActor } from '../audit/audit-log.js';
import type { KernelServices } from '../kernel-services.js';
import { recordNotifications } from '../notifications/notification-events.js';
import { loadIssuanceContext, type IssuanceContext } from './issuance-context.js';
import { fromPluginError, IssuanceError, refused } from './issuance-failure.js';
import { parseIssued } from './issuance-leaf.js';
import { leafProblems } from './issuance-leaf-check.js';
import { issuanceStoreQueue, type IssuanceStoreQueue, type StoreLease } from './issuance-batch.js';
import type { StoredIssuance } from './issuance-store.js';
import { evaluatePolicies, isBlocking, lifetimeLimitDays, recordPolicyOutcomes, type PolicyRow } from './policy-engine.js';
import { enforceProfile, type IssuancePlan } from './profile-enforcement.js';

/**
 * The issuance service: CSR in, stored and audited certificate version out.
 * Used by the Issuance/Renewal job handler, and by anything else that issues
 * (ACME/EST/SCEP servers, the bench) without a job.
 *
 *   load + check (certificate, issuer, profile) -> verify the CSR (crypto pool)
 *   -> enforce the profile -> check policies (Error/Critical block, recorded)
 *   -> ask the issuer plugin (no transaction open meanwhile: PGlite has one connection)
 *   -> parse and check the certificate -> store everything in ONE transaction
 *      (shared with concurrent issuances: group commit, issuance-batch.ts).
 */

export interface IssueInput {
  certificateId: string;
  type: 'Issuance' | 'Renewal';
  csrPem: string;
  /** The job this issuance belongs to: marks the version (one per job) and fences the store. */
  jobId?: string | null;
  /** The job lease the store is fenced on (the job handler's): refused if the job is no longer held. */
  lease?: StoreLease;
  /** The CSR's key was made by the kernel for this job (server keygen). */
  serverKey?: boolean;
  /** A CA order to follow up (checkOrder) instead of placing a new one. */
  orderId?: string | null;
  requestedNotAfter?: Date | null;
  requestedEkus?: string[] | null;
  actor?: AuditActor;
  /** Extra audit details. */
  details?: Record<string, unknown>;
  timeoutMs?: number;
}

export type IssueOutcome =
  | ({ status: 'issued'; serialNumber: string; fingerprintSha256: string; notAfter: Date } & StoredIssuance)
  | { status: 'pending'; orderId: string; retryAfterMs: number };

const DAY_MS = 86_400_000;
const DEFAULT_TIMEOUT_MS = 60_000;
/** A CA that asks to be polled again much later is looked at within this anyway. */
const MAX_RETRY_AFTER_MS = 6 * 3_600_000;

export async function issueCertificate(k: KernelServices, input: IssueInput): Promise<IssueOutcome> {
  // Counted as under way until it stores or fails: a store in progress waits a moment for it (group commit).
  const queue = issuanceStoreQueue(k);
  const arrived = queue.expect();
  try {
    return await issueUnderWay(k, input, queue, arrived);
  } finally {
    arrived();
  }
}

async function issueUnderWay(k: KernelServices, input: IssueInput, queue: IssuanceStoreQueue, arrived: () => void): Promise<IssueOutcome> {
  const knex = k.db.knex;
  // Independent work overlaps: the context (with the applicable policies: one round trip) while the pool checks the CSR.
  const [ctx, csr] = await Promise.all([loadIssuanceContext(k, knex, input.certificateId), k.crypto.verifyCsr(input.csrPem)]);
  const policies = ctx.policies;
  const actor = input.actor ?? SYSTEM_ACTOR;
  const now = new Date();

  const checked = enforceProfile(ctx.profile, csr, ctx.cert, { now, requestedNotAfter: input.requestedNotAfter, requestedEkus: input.requestedEkus });
  if (!checked.ok) throw refused(`the CSR breaks the rules for certificate ${ctx.cert.id}: ${checked.problems.join('; ')}`);
  const plan = checked.plan;

  shapeLifetime(plan, policies, now);
  const before = evaluatePolicies(policies, { issuerId: ctx.issuer.id, keyAlgorithm: plan.keyAlgorithm, keySize: plan.keySize, names: plan.sans, notBefore: now, notAfter: plan.notAfter });
  const blocking = before.violations.filter((v) => isBlocking(v.severity));
  if (blocking.length) {
    await knex.transaction(async (trx) => {
      const recorded = await recordPolicyOutcomes(trx, [{ certificateId: ctx.cert.id, evaluation: { violations: blocking, passed: [] }, commonName: ctx.cert.common_name }], { now, resolvePassed: false, refused: true });
      await recordNotifications(k, trx, recorded.events, { now });
      await k.audit.append({
        category: 'lifecycle', ...actor, action: 'certificate_policy_violation', resource_type: 'certificate', resource_id: ctx.cert.id,
        details: { job_id: input.jobId ?? null, blocked: true, violations: blocking.map((v) => ({ policy_id: v.policy.id, severity: v.severity, message: v.message })), violation_ids: recorded.opened.get(ctx.cert.id) ?? [] },
      }, trx);
    });
    throw refused(`blocked by policy: ${blocking.map((v) => `${v.message} [${v.severity}]`).join('; ')}`);
  }

  const result = await callIssuer(k, ctx, input, plan);
  if (result.status === 'pending') {
    return { status: 'pending', orderId: result.orderId, retryAfterMs: Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.round(result.retryAfterSeconds * 1000))) };
  }
  if (result.status === 'denied') throw new IssuanceError(`issuer ${ctx.issuer.id} denied the request: ${result.reason}`, false, 'denied');
  if (result.status === 'failed') throw new IssuanceError(`issuer ${ctx.issuer.id} failed: ${result.reason}`, result.retryable, result.retryable ? 'transient' : 'denied');

  let parsed;
  try {
    parsed = parseIssued(result.certificatePem, result.chainPem, input.csrPem, csr);
  } catch (err) {
    throw new IssuanceError(`issuer ${ctx.issuer.id} returned an unusable certificate: ${(err as Error).message}`, false, 'issuer_fault');
  }
  const { leaf } = parsed;
  // The issuer may not widen what was asked for (issuance-leaf-check.ts): nothing is stored.
  const beyond = leafProblems(parsed.der, plan, ctx.profile?.allowed_ekus ?? null);
  if (beyond.length) throw new IssuanceError(`issuer ${ctx.issuer.id} returned a certificate that does not keep to the request: ${beyond.join('; ')}`, false, 'issuer_fault');
  // The issued validity is known now: lifetime rules are checked on it (recorded; the certificate exists either way).
  const after = evaluatePolicies(policies, { issuerId: ctx.issuer.id, keyAlgorithm: leaf.keyAlgorithm, keySize: leaf.keySize, names: plan.sans, notBefore: leaf.notBefore, notAfter: leaf.notAfter });
  const ttlExceeded = plan.maxTtlSeconds !== null && leaf.notAfter.getTime() > Date.now() + plan.maxTtlSeconds * 1000 + 60_000;
  if (ttlExceeded) k.log.warn({ certificate_id: ctx.cert.id, issuer_id: ctx.issuer.id }, 'the issuer ignored the profile\'s max TTL');

  // Group commit: stored together with the issuances finishing meanwhile (issuance-batch.ts).
  const storing = queue.store({
    certificateId: ctx.cert.id, commonName: ctx.cert.common_name, type: input.type, jobId: input.jobId ?? null, csrPem: input.csrPem, leaf,
    serverKey: Boolean(input.serverKey), issuerId: ctx.issuer.id, profileId: ctx.profile?.id ?? null, policy: after,
    details: { ekus: plan.ekus, ttl_capped: plan.ttlCapped, ...(ttlExceeded ? { ttl_exceeded: true } : {}), ...input.details },
  }, actor, input.lease);
  arrived();
  const stored = await storing;
  return { status: 'issued', ...stored, serialNumber: leaf.serialNumber, fingerprintSha256: leaf.fingerprintSha256, notAfter: leaf.notAfter };
}

/**
 * Max-lifetime policies shape a request that names no validity: the issuer is
 * asked for no more than the shortest limit (and the profile's cap still applies).
 */
function shapeLifetime(plan: IssuancePlan, policies: PolicyRow[], now: Date): void {
  const days = lifetimeLimitDays(policies);
  if (plan.notAfter || days === null) return;
  const byPolicy = now.getTime() + days * DAY_MS;
  const byProfile = plan.maxTtlSeconds !== null ? now.getTime() + plan.maxTtlSeconds * 1000 : Infinity;
  plan.notAfter = new Date(Math.min(byPolicy, byProfile));
}

async function callIssuer(k: KernelServices, ctx: IssuanceContext, input: IssueInput, plan: IssuancePlan): Promise<IssueResult> {
  const timeoutMs = input.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (input.orderId) {
    try {
      return (await k.pluginHost.call(ctx.issuer.type, ctx.issuer.id, 'checkOrder', { orderId: input.orderId, certificateId: ctx.cert.id }, { timeoutMs, instanceRow: ctx.issuer })) as unknown as IssueResult;
    } catch (err) {
      throw fromPluginError(err, `issuer ${ctx.issuer.id}: checking order ${input.orderId}`);
    }
  }
  const request: IssueRequest = {
    certificateId: ctx.cert.id,
    csrPem: input.csrPem,
    commonName: ctx.cert.common_name,
    sans: plan.sans,
    ...(plan.notAfter ? { notAfter: plan.notAfter.toISOString() } : {}),
    profile: { id: ctx.profile?.id ?? null, maxTtlSeconds: plan.maxTtlSeconds, ekus: plan.ekus },
    ...(input.type === 'Renewal' && ctx.cert.serial_number ? { previousSerialNumber: ctx.cert.serial_number } : {}),
  };
  const method = input.type === 'Renewal' && ctx.plugin.features.includes('renew') ? 'renew' : 'issue';
  try {
    return (await k.pluginHost.call(ctx.issuer.type, ctx.issuer.id, method, request as unknown as Json, { timeoutMs, instanceRow: ctx.issuer })) as unknown as IssueResult;
  } catch (err) {
    throw fromPluginError(err, `issuer ${ctx.issuer.id}.${method}`);
  }
}
