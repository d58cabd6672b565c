import type { Knex } from 'knex';
import type { KernelServices } from '../kernel-services.js';
import { DEFAULT_ALERT_THRESHOLDS_DAYS } from './expiry-status.js';
import { renewSelected } from './renewal-requests.js';
import { settleCancelledRenewals } from './cancelled-renewal.js';
import { rowsOf } from '../db/raw-rows.js';
import { classFilter, NO_OPEN_ISSUING_JOB, RENEWAL_WINDOW, sqlList, type CertificateClass } from './lifecycle-sql.js';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import { recordNotifications } from '../notifications/notification-events.js';
import { ARI_HOLDS_RENEWAL, queueAriRenewals, refreshRenewalInfo, renewalInfoIssuerTypes } from './renewal-info.js';
import { queueRenewalRetries, reportExhaustedRetries, settleFailedIssuingJobs } from './renewal-retry.js';

export interface ExpiryCheckResult {
  expired: number;
  expiring: number;
  resettled: number;
  /** Renewal (or re-issuance) jobs queued: by the threshold rule, by ARI, and retries of failed renewals. */
  renewalJobs: number;
  /** Notifications recorded: expiry warnings and exhausted renewal retries. */
  notifications: number;
}

export interface ExpiryCheckOptions {
  /** The clock (tests move it; the loop uses the wall clock). */
  now?: Date;
  /** Certificates per transaction. */
  batchSize?: number;
  signal?: AbortSignal;
  /**
   * Which certificates this pass covers. The hourly loop takes the standard ones (the
   * default); short-lived ones (under an hour) have their own 30 s loop, which gets no
   * expiry warnings: for them expiry is routine, and a failed renewal is alerted on.
   */
  certificates?: CertificateClass;
}

const DAY_MS = 86_400_000;
/** Certificates whose expiry still matters for alerts. */
const ALERTABLE = ['Active', 'Expiring', 'Expired', 'RenewalInProgress', 'Failed'];

/**
 * One pass of the expiry scheduler: Active/Expiring certificates past expires_at
 * become Expired; Active ones inside their renewal window become Expiring;
 * issuers that offer renewal windows (ARI, renewal-info.ts) are asked for them
 * and renew at the time picked inside the window; auto-renewing certificates that
 * are Expiring or Expired and have no open issuing job get a Renewal job
 * (RenewalInProgress); failed renewals are retried on their policy's interval up
 * to its max_retries (renewal-retry.ts); ExpirationWarning notifications go out
 * once per certificate, threshold and expiry.
 *
 * Every step selects what still needs doing, so a second pass with the same
 * clock changes nothing. Work is done in batches, each batch a few statements
 * in one transaction, with locked rows skipped (a request holding a certificate
 * wins; the next tick picks it up).
 */
export async function runExpiryCheck(k: KernelServices, opts: ExpiryCheckOptions = {}): Promise<ExpiryCheckResult> {
  const now = opts.now ?? new Date();
  const batch = opts.batchSize ?? 500;
  const cls = opts.certificates ?? 'standard';
  const ctx = { k, now, stamp: new Date(), batch, signal: opts.signal, cls, inClass: classFilter(cls) };
  const expired = await inBatches(ctx, moveToExpired);
  const expiring = await inBatches(ctx, moveToExpiring);
  const resettled = await inBatches(ctx, resettleAfterCancelledRenewal);
  // ARI only when some issuer plugin offers it: no query at all otherwise.
  const ariTypes = renewalInfoIssuerTypes(k);
  let renewalJobs = 0;
  if (ariTypes.length) {
    const fetched = await refreshRenewalInfo(ctx, ariTypes);
    if (fetched) k.log.debug({ fetched }, 'renewal info fetched');
    renewalJobs += await inBatches(ctx, queueAriRenewals(ariTypes));
  }
  renewalJobs += await inBatches(ctx, queueRenewals);
  const failed = await inBatches(ctx, settleFailedIssuingJobs);
  if (failed) k.log.warn({ certificates: failed }, 'certificates whose issuing job failed outside its handler marked Failed');
  renewalJobs += await inBatches(ctx, queueRenewalRetries);
  const warnings = cls === 'short-lived' ? 0 : await inBatches(ctx, queueExpiryWarnings);
  const exhausted = await inBatches(ctx, reportExhaustedRetries);
  return { expired, expiring, resettled, renewalJobs, notifications: warnings + exhausted };
}

export interface StepContext {
  k: KernelServices;
  /** The clock decisions are made against. */
  now: Date;
  /** Wall-clock time written to updated_at/created_at. */
  stamp: Date;
  batch: number;
  signal?: AbortSignal;
  cls: CertificateClass;
  /** SQL condition on `c` selecting this pass's certificates. */
  inClass: string;
}

export type Step = (trx: Knex.Transaction, ctx: StepContext) => Promise<number>;

/** Runs a step one transaction per batch until a batch comes back short. */
async function inBatches(ctx: StepContext, step: Step): Promise<number> {
  let total = 0;
  for (;;) {
    if (ctx.signal?.aborted) return total;
    const n = await ctx.k.db.knex.transaction((trx) => step(trx, ctx));
    total += n;
    if (n < ctx.batch) return total;
  }
}

async function statusChanges(trx: Knex.Transaction, k: KernelServices, rows: { id: string; from_status: string }[], to: string, reason: string) {
  if (!rows.length) return;
  await k.audit.append(rows.map((r) => ({
    category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'certificate_status_changed', resource_type: 'certificate', resource_id: r.id,
    details: { from: r.from_status, to, reason },
  })), trx);
}

const moveToExpired: Step = async (trx, { k, now, stamp, batch, inClass }) => {
  const rows = rowsOf<{ id: string; from_status: string }>(await trx.raw(
    `WITH due AS (
       SELECT c.id, c.status AS from_status FROM managed_certificates c
        WHERE c.status IN ('Active', 'Expiring') AND c.expires_at <= ? AND ${inClass}
        ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED)
     UPDATE managed_certificates c SET status = 'Expired', updated_at = ?
       FROM due WHERE c.id = due.id
     RETURNING c.id, due.from_status`,
    [now, batch, stamp],
  ));
  await statusChanges(trx, k, rows, 'Expired', 'past_expiry');
  return rows.length;
};

const moveToExpiring: Step = async (trx, { k, now, stamp, batch, inClass }) => {
  const rows = rowsOf<{ id: string; from_status: string }>(await trx.raw(
    `WITH due AS (
       SELECT c.id, c.status AS from_status FROM managed_certificates c
         LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
        WHERE c.status = 'Active' AND c.expires_at > ?
          AND c.expires_at <= ?::timestamptz + ${RENEWAL_WINDOW} AND ${inClass}
        ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED)
     UPDATE managed_certificates c SET status = 'Expiring', updated_at = ?
       FROM due WHERE c.id = due.id
     RETURNING c.id, due.from_status`,
    [now, now, batch, stamp],
  ));
  await statusChanges(trx, k, rows, 'Expiring', 'renewal_window');
  return rows.length;
};

/** The sweep half of the one settle rule (lifecycle/cancelled-renewal.ts). */
const resettleAfterCancelledRenewal: Step = (trx, { k, now, stamp, batch, cls }) =>
  settleCancelledRenewals(trx, k.audit, { now, stamp, limit: batch, certificateClass: cls });

/**
 * Certificates without a policy renew automatically, as do those whose policy
 * says so; one without an issuer has nothing to renew against and is left to
 * the alerts. An Expiring one whose CA picked a later renewal time (ARI, still
 * before its expiry) waits for that time.
 */
// Expiring and Expired certificates were issued: each gets a Renewal job.
const queueRenewals: Step = (trx, ctx) => renewSelected(trx, ctx, 'expiry',
  `FROM managed_certificates c
     LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
    WHERE c.status IN ('Expiring', 'Expired') AND c.issuer_id IS NOT NULL AND coalesce(rp.auto_renew, true)
      AND NOT (c.status = 'Expiring' AND ${ARI_HOLDS_RENEWAL})
      AND ${NO_OPEN_ISSUING_JOB} AND ${ctx.inClass}`,
  [ctx.now]);

interface DueWarning {
  id: string;
  common_name: string;
  expires_at: Date;
  threshold: string;
  dedupe_key: string;
}

/** Expired is critical, the last week a warning, earlier thresholds information. */
const expirySeverity = (daysLeft: number) => (daysLeft <= 0 ? 'critical' : daysLeft <= 7 ? 'warning' : 'info');

/**
 * One ExpirationWarning per certificate, threshold and expiry: the threshold is
 * the smallest one already crossed (a certificate first seen 5 days out gets the
 * 7-day warning, not the 30 and 14 as well). The dedupe key carries the expiry,
 * so a renewed certificate is warned about again on its next expiry.
 */
const queueExpiryWarnings: Step = async (trx, { k, now, stamp, batch, inClass }) => {
  const due = rowsOf<DueWarning>(await trx.raw(
    `WITH thresholds AS (
       SELECT rp.id AS policy_id, CASE WHEN jsonb_typeof(e.value) = 'number' THEN (e.value)::numeric END AS days
         FROM renewal_policies rp
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(rp.alert_thresholds_days) = 'array' THEN rp.alert_thresholds_days ELSE '[]'::jsonb END) e
       UNION ALL
       SELECT NULL, (e.value)::numeric FROM jsonb_array_elements(?::jsonb) e
     ), crossed AS (
       SELECT c.id, c.common_name, c.expires_at, min(t.days) AS threshold
         FROM managed_certificates c
         JOIN thresholds t ON t.policy_id IS NOT DISTINCT FROM c.renewal_policy_id
        WHERE c.status IN (${sqlList(ALERTABLE)}) AND c.expires_at IS NOT NULL
          AND t.days >= 0 AND c.expires_at <= ?::timestamptz + t.days * interval '1 day' AND ${inClass}
        GROUP BY c.id, c.common_name, c.expires_at
     ), keyed AS (
       SELECT crossed.*, 'expiry:' || crossed.id || ':' || crossed.threshold::text || ':' || floor(extract(epoch FROM crossed.expires_at))::bigint::text AS dedupe_key
         FROM crossed
     )
     SELECT keyed.id, keyed.common_name, keyed.expires_at, keyed.threshold::text AS threshold, keyed.dedupe_key
       FROM keyed
      WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_key = keyed.dedupe_key)
      ORDER BY keyed.id LIMIT ?`,
    [JSON.stringify(DEFAULT_ALERT_THRESHOLDS_DAYS), now, batch],
  ));
  if (!due.length) return 0;
  await recordNotifications(k, trx, due.map((d) => {
    const daysLeft = Math.ceil((new Date(d.expires_at).getTime() - now.getTime()) / DAY_MS);
    const when = daysLeft <= 0 ? 'has expired' : `expires in ${daysLeft} day${daysLeft === 1 ? '' : 's'}`;
    return {
      type: 'ExpirationWarning' as const,
      certificate_id: d.id,
      severity: expirySeverity(daysLeft),
      subject: `Certificate ${d.common_name} ${when}`,
      message: `Certificate ${d.id} (${d.common_name}) ${when} (expires_at ${new Date(d.expires_at).toISOString()}; ${d.threshold}-day threshold).`,
      dedupe_key: d.dedupe_key,
    };
  }), { now: stamp });
  return due.length;
};
