import type { Knex } from 'knex';
import { newId } from '../db/ids.js';
import { OPEN_JOB_STATUSES } from '../jobs/job-states.js';
import type { KernelServices } from '../kernel-services.js';
import { DEFAULT_ALERT_THRESHOLDS_DAYS, DEFAULT_RENEWAL_WINDOW_DAYS } from './expiry-status.js';
import { enqueueIssuingJobs, ISSUING_JOB_TYPES, type CertificateForJob } from './issuance-jobs.js';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';

export interface ExpiryCheckResult {
  expired: number;
  expiring: number;
  resettled: number;
  renewalJobs: number;
  notifications: number;
}

export interface ExpiryCheckOptions {
  /** The clock (tests move it; the loop uses the wall clock). */
  now?: Date;
  /** Certificates per transaction. */
  batchSize?: number;
  signal?: AbortSignal;
}

const DAY_MS = 86_400_000;
/** Certificates whose expiry still matters for alerts. */
const ALERTABLE = ['Active', 'Expiring', 'Expired', 'RenewalInProgress', 'Failed'];

const rowsOf = <T>(res: { rows?: T[] } | T[]): T[] => ((res as { rows?: T[] }).rows ?? (res as T[]));
const sqlList = (values: readonly string[]) => values.map((v) => `'${v.replace(/'/g, "''")}'`).join(', ');

/**
 * One pass of the expiry scheduler: Active/Expiring certificates past expires_at
 * become Expired; Active ones inside their renewal window become Expiring;
 * auto-renewing certificates that are Expiring or Expired and have no open
 * issuing job get a Renewal job (RenewalInProgress); ExpirationWarning
 * notifications go out once per certificate, threshold and expiry.
 *
 * Every step selects what still needs doing, so a second pass with the same
 * clock changes nothing. Work is done in batches, each batch a few statements
 * in one transaction, with locked rows skipped (a request holding a certificate
 * wins; the next tick picks it up).
 */
export async function runExpiryCheck(k: KernelServices, opts: ExpiryCheckOptions = {}): Promise<ExpiryCheckResult> {
  const now = opts.now ?? new Date();
  const batch = opts.batchSize ?? 500;
  const ctx = { k, now, stamp: new Date(), batch, signal: opts.signal };
  const expired = await inBatches(ctx, moveToExpired);
  const expiring = await inBatches(ctx, moveToExpiring);
  const resettled = await inBatches(ctx, resettleAfterCancelledRenewal);
  const renewalJobs = await inBatches(ctx, queueRenewals);
  const notifications = await inBatches(ctx, queueExpiryWarnings);
  return { expired, expiring, resettled, renewalJobs, notifications };
}

interface StepContext {
  k: KernelServices;
  /** The clock decisions are made against. */
  now: Date;
  /** Wall-clock time written to updated_at/created_at. */
  stamp: Date;
  batch: number;
  signal?: AbortSignal;
}

type Step = (trx: Knex.Transaction, ctx: StepContext) => Promise<number>;

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

const moveToExpired: Step = async (trx, { k, now, stamp, batch }) => {
  const rows = rowsOf<{ id: string; from_status: string }>(await trx.raw(
    `WITH due AS (
       SELECT id, status AS from_status FROM managed_certificates
        WHERE status IN ('Active', 'Expiring') AND expires_at <= ?
        ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)
     UPDATE managed_certificates c SET status = 'Expired', updated_at = ?
       FROM due WHERE c.id = due.id
     RETURNING c.id, due.from_status`,
    [now, batch, stamp],
  ));
  await statusChanges(trx, k, rows, 'Expired', 'past_expiry');
  return rows.length;
};

const moveToExpiring: Step = async (trx, { k, now, stamp, batch }) => {
  const rows = rowsOf<{ id: string; from_status: string }>(await trx.raw(
    `WITH due AS (
       SELECT c.id, c.status AS from_status FROM managed_certificates c
         LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
        WHERE c.status = 'Active' AND c.expires_at > ?
          AND c.expires_at <= ?::timestamptz + make_interval(days => coalesce(rp.renewal_window_days, ?))
        ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED)
     UPDATE managed_certificates c SET status = 'Expiring', updated_at = ?
       FROM due WHERE c.id = due.id
     RETURNING c.id, due.from_status`,
    [now, now, DEFAULT_RENEWAL_WINDOW_DAYS, batch, stamp],
  ));
  await statusChanges(trx, k, rows, 'Expiring', 'renewal_window');
  return rows.length;
};

const NO_OPEN_ISSUING_JOB = `NOT EXISTS (SELECT 1 FROM jobs j WHERE j.certificate_id = c.id
  AND j.type IN (${sqlList(ISSUING_JOB_TYPES)}) AND j.status IN (${sqlList(OPEN_JOB_STATUSES)}))`;

/**
 * A certificate left RenewalInProgress after its renewal was cancelled (an
 * approval that timed out or was turned down) returns to the status its expiry
 * gives it, so it is alerted on and, if auto-renewing, asked for again.
 */
const resettleAfterCancelledRenewal: Step = async (trx, { k, now, stamp, batch }) => {
  const rows = rowsOf<{ id: string; from_status: string; to_status: string }>(await trx.raw(
    `WITH stuck AS (
       SELECT c.id, c.status AS from_status,
              CASE WHEN c.expires_at <= ? THEN 'Expired'
                   WHEN c.expires_at <= ?::timestamptz + make_interval(days => coalesce(rp.renewal_window_days, ?)) THEN 'Expiring'
                   ELSE 'Active' END AS to_status
         FROM managed_certificates c
         LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
        WHERE c.status = 'RenewalInProgress' AND c.expires_at IS NOT NULL AND ${NO_OPEN_ISSUING_JOB}
          AND (SELECT j.status FROM jobs j WHERE j.certificate_id = c.id AND j.type IN (${sqlList(ISSUING_JOB_TYPES)})
                ORDER BY j.created_at DESC, j.id DESC LIMIT 1) = 'Cancelled'
        ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED)
     UPDATE managed_certificates c SET status = stuck.to_status, updated_at = ?
       FROM stuck WHERE c.id = stuck.id
     RETURNING c.id, stuck.from_status, stuck.to_status`,
    [now, now, DEFAULT_RENEWAL_WINDOW_DAYS, batch, stamp],
  ));
  if (rows.length) {
    await k.audit.append(rows.map((r) => ({
      category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'certificate_status_changed', resource_type: 'certificate', resource_id: r.id,
      details: { from: r.from_status, to: r.to_status, reason: 'renewal_cancelled' },
    })), trx);
  }
  return rows.length;
};

/**
 * Certificates without a policy renew automatically, as do those whose policy
 * says so; one without an issuer has nothing to renew against and is left to
 * the alerts.
 */
const queueRenewals: Step = async (trx, { k, stamp, batch }) => {
  const certs = rowsOf<CertificateForJob & { from_status: string }>(await trx.raw(
    `SELECT c.id, c.agent_id, c.profile_id, c.status AS from_status
       FROM managed_certificates c
       LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
      WHERE c.status IN ('Expiring', 'Expired') AND c.issuer_id IS NOT NULL AND coalesce(rp.auto_renew, true)
        AND ${NO_OPEN_ISSUING_JOB}
      ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED`,
    [batch],
  ));
  if (!certs.length) return 0;
  const jobs = await enqueueIssuingJobs(k, trx, certs, 'Renewal', { actor: SYSTEM_ACTOR, trigger: 'expiry', now: stamp });
  await trx('managed_certificates').whereIn('id', certs.map((c) => c.id)).update({ status: 'RenewalInProgress', updated_at: stamp });
  const jobOf = new Map(jobs.map((j) => [j.certificate_id, j]));
  await k.audit.append(certs.map((c) => ({
    category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'certificate_renewal_requested', resource_type: 'certificate', resource_id: c.id,
    details: { from: c.from_status, to: 'RenewalInProgress', job_id: jobOf.get(c.id)?.id, job_status: jobOf.get(c.id)?.status, trigger: 'expiry' },
  })), trx);
  return certs.length;
};

interface DueWarning {
  id: string;
  common_name: string;
  expires_at: Date;
  threshold: string;
  email: string | null;
  dedupe_key: string;
}

/**
 * One ExpirationWarning per certificate, threshold and expiry: the threshold is
 * the smallest one already crossed (a certificate first seen 5 days out gets the
 * 7-day warning, not the 30 and 14 as well). The dedupe key carries the expiry,
 * so a renewed certificate is warned about again on its next expiry.
 */
const queueExpiryWarnings: Step = async (trx, { now, stamp, batch }) => {
  const due = rowsOf<DueWarning>(await trx.raw(
    `WITH thresholds AS (
       SELECT rp.id AS policy_id, CASE WHEN jsonb_typeof(e.value) = 'number' THEN (e.value)::numeric END AS days
         FROM renewal_policies rp
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(rp.alert_thresholds_days) = 'array' THEN rp.alert_thresholds_days ELSE '[]'::jsonb END) e
       UNION ALL
       SELECT NULL, (e.value)::numeric FROM jsonb_array_elements(?::jsonb) e
     ), crossed AS (
       SELECT c.id, c.common_name, c.expires_at, c.owner_id, min(t.days) AS threshold
         FROM managed_certificates c
         JOIN thresholds t ON t.policy_id IS NOT DISTINCT FROM c.renewal_policy_id
        WHERE c.status IN (${sqlList(ALERTABLE)}) AND c.expires_at IS NOT NULL
          AND t.days >= 0 AND c.expires_at <= ?::timestamptz + t.days * interval '1 day'
        GROUP BY c.id, c.common_name, c.expires_at, c.owner_id
     ), keyed AS (
       SELECT crossed.*, 'expiry:' || crossed.id || ':' || crossed.threshold::text || ':' || floor(extract(epoch FROM crossed.expires_at))::bigint::text AS dedupe_key
         FROM crossed
     )
     SELECT keyed.id, keyed.common_name, keyed.expires_at, keyed.threshold::text AS threshold, keyed.dedupe_key, o.email
       FROM keyed LEFT JOIN owners o ON o.id = keyed.owner_id
      WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.dedupe_key = keyed.dedupe_key)
      ORDER BY keyed.id LIMIT ?`,
    [JSON.stringify(DEFAULT_ALERT_THRESHOLDS_DAYS), now, batch],
  ));
  if (!due.length) return 0;
  const rows = due.map((d) => {
    const daysLeft = Math.ceil((new Date(d.expires_at).getTime() - now.getTime()) / DAY_MS);
    const when = daysLeft <= 0 ? 'has expired' : `expires in ${daysLeft} day${daysLeft === 1 ? '' : 's'}`;
    return {
      id: newId('notification'),
      type: 'ExpirationWarning',
      certificate_id: d.id,
      recipient: d.email ?? '',
      subject: `Certificate ${d.common_name} ${when}`,
      message: `Certificate ${d.id} (${d.common_name}) ${when} (expires_at ${new Date(d.expires_at).toISOString()}; ${d.threshold}-day threshold).`,
      status: 'pending',
      dedupe_key: d.dedupe_key,
      created_at: stamp,
      updated_at: stamp,
    };
  });
  await trx('notifications').insert(rows).onConflict('dedupe_key').ignore();
  return due.length;
};
