import type { Knex } from 'knex';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { KernelServices } from '../kernel-services.js';
import { recordNotifications } from '../notifications/notification-events.js';
import { PluginCallError } from '../plugins/host/contracts.js';

/**
 * Why an issuance did not produce a certificate. `retryable: false` ends an
 * Issuance/Renewal job at once (the job queue reads the flag): a CSR that breaks
 * the profile, a denied request or a disabled issuer will not get better by waiting.
 */
export class IssuanceError extends Error {
  constructor(message: string, readonly retryable: boolean, readonly kind: IssuanceFailureKind = retryable ? 'transient' : 'refused') {
    super(message);
    this.name = 'IssuanceError';
  }
}

export type IssuanceFailureKind =
  | 'refused' // the request breaks a rule (profile, policy, state)
  | 'denied' // the CA said no
  | 'transient' // try again later
  | 'issuer_fault'; // the issuer answered with something unusable

export const refused = (message: string) => new IssuanceError(message, false, 'refused');

/** Plugin host failures: a hung or crashed runner may work next time; a plugin that cannot do the call will not. */
export function fromPluginError(err: unknown, what: string): IssuanceError {
  if (!(err instanceof PluginCallError)) return new IssuanceError(`${what} failed: ${(err as Error)?.message ?? String(err)}`, true);
  switch (err.code) {
    case 'not_supported':
    case 'bad_result':
    case 'capability_denied':
      return new IssuanceError(`${what} failed (${err.code}): ${err.message}`, false, 'issuer_fault');
    default:
      return new IssuanceError(`${what} failed (${err.code}): ${err.message}`, true);
  }
}

/** A certificate whose issuing job failed for good (the certificate has just been marked Failed). */
export interface FinalFailure {
  certificateId: string;
  commonName: string;
  /** The certificate's status before Failed. */
  fromStatus: string;
  jobId: string;
  jobType: string;
  error: string | null;
}

/**
 * What a final issuing-job failure leaves behind, in the caller's transaction: a
 * RenewalFailure (critical for a renewal; keyed by the job, so never twice) and the
 * certificate_renewal_failed / certificate_issuance_failed audit event. The job
 * handler records its own last attempt; the expiry loop, jobs that failed outside it.
 */
export async function recordFinalFailures(
  k: Pick<KernelServices, 'db' | 'log' | 'audit'>,
  trx: Knex.Transaction,
  failures: readonly FinalFailure[],
  opts: { now?: Date; details?: Record<string, unknown> } = {},
): Promise<void> {
  if (!failures.length) return;
  const what = (f: FinalFailure) => (f.jobType === 'Renewal' ? 'renewal' : 'issuance');
  await recordNotifications(k, trx, failures.map((f) => ({
    type: 'RenewalFailure' as const, certificate_id: f.certificateId, severity: f.jobType === 'Renewal' ? 'critical' as const : 'warning' as const,
    subject: `Certificate ${f.commonName}: ${what(f)} failed`,
    message: `The ${what(f)} of certificate ${f.certificateId} (${f.commonName}) failed (job ${f.jobId}): ${f.error ?? 'no reason recorded'}`,
    dedupe_key: `issuance-failed:${f.jobId}`,
  })), { now: opts.now });
  await k.audit.append(failures.map((f) => ({
    category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: `certificate_${what(f)}_failed`, resource_type: 'certificate', resource_id: f.certificateId,
    details: { job_id: f.jobId, from: f.fromStatus, to: 'Failed', error: (f.error ?? '').slice(0, 1000), ...opts.details },
  })), trx);
}
