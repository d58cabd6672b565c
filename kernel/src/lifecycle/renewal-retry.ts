import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import { recordNotifications } from '../notifications/notification-events.js';
import type { Step } from './expiry-check.js';
import { recordFinalFailures } from './issuance-failure.js';
import { ISSUING_JOB_TYPES } from './issuance-jobs.js';
import { rowsOf } from '../db/raw-rows.js';
import { LATEST_ISSUING_JOB, NO_OPEN_ISSUING_JOB, sqlList } from './lifecycle-sql.js';
import { renewSelected } from './renewal-requests.js';

/**
 * Retrying failed renewals. The issuance handler leaves a certificate Failed after its
 * Renewal job's last attempt; nothing else would ask again, so the expiry loop does:
 * an auto-renewing Failed certificate that was issued before gets a new Renewal job
 * once its policy's retry_interval_seconds have passed since the last failed issuing
 * job, until max_retries Renewal jobs in a row have failed (counted since its newest
 * version, so a success starts the count afresh). Then it stays Failed, and one
 * RenewalFailure per certificate and version says the retries are exhausted.
 */

/** renewal_policies' column defaults, for certificates without a policy. */
export const DEFAULT_MAX_RETRIES = 3;
export const DEFAULT_RETRY_INTERVAL_SECONDS = 3600;

/**
 * FROM/WHERE body: Failed auto-renewing certificates `c` that have a version and
 * no open issuing job, with their policy `rp`, their newest version `lv`, and `f`:
 * their failed Renewal jobs since that version and when the last issuing job failed.
 */
const FAILED_RENEWALS = `
       FROM managed_certificates c
       LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
      CROSS JOIN LATERAL (
        SELECT v.id, v.created_at FROM certificate_versions v WHERE v.certificate_id = c.id
         ORDER BY v.created_at DESC, v.id DESC LIMIT 1) lv
      CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE j.type = 'Renewal') AS failures,
               max(coalesce(j.completed_at, j.updated_at)) AS last_failed_at
          FROM jobs j
         WHERE j.certificate_id = c.id AND j.type IN (${sqlList(ISSUING_JOB_TYPES)}) AND j.status = 'Failed'
           AND j.created_at > lv.created_at) f
      WHERE c.status = 'Failed' AND c.issuer_id IS NOT NULL AND coalesce(rp.auto_renew, true) AND ${NO_OPEN_ISSUING_JOB}`;

const MAX_RETRIES = `coalesce(rp.max_retries, ${DEFAULT_MAX_RETRIES})`;

/**
 * A job whose lease ran out on its last attempt (its replica died) is failed by the
 * job reaper, which knows nothing of certificates: the certificate would stay
 * RenewalInProgress (or Pending) for good, never retried. It gets what the issuance
 * handler gives a final failure (Failed, the audit event, a RenewalFailure under the
 * handler's key, so never twice), and then the retry rule applies.
 */
export const settleFailedIssuingJobs: Step = async (trx, { k, stamp, batch, inClass }) => {
  const rows = rowsOf<{ id: string; common_name: string; from_status: string; job_id: string; job_type: string; last_error: string | null }>(await trx.raw(
    `WITH stuck AS (
       SELECT c.id, c.common_name, c.status AS from_status, lj.id AS job_id, lj.type AS job_type, lj.last_error
         FROM managed_certificates c
        CROSS JOIN LATERAL (${LATEST_ISSUING_JOB}) lj
        WHERE c.status IN ('RenewalInProgress', 'Pending') AND lj.status = 'Failed' AND ${NO_OPEN_ISSUING_JOB} AND ${inClass}
        ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED)
     UPDATE managed_certificates c SET status = 'Failed', updated_at = ?
       FROM stuck WHERE c.id = stuck.id
     RETURNING c.id, stuck.common_name, stuck.from_status, stuck.job_id, stuck.job_type, stuck.last_error`,
    [batch, stamp],
  ));
  await recordFinalFailures(k, trx, rows.map((r) => ({
    certificateId: r.id, commonName: r.common_name, fromStatus: r.from_status, jobId: r.job_id, jobType: r.job_type, error: r.last_error,
  })), { now: stamp, details: { reason: 'job_failed_without_handler' } });
  return rows.length;
};

/** Re-queues a Renewal for each failed certificate whose retry is due. */
export const queueRenewalRetries: Step = (trx, ctx) => renewSelected(trx, ctx, 'retry',
  `${FAILED_RENEWALS}
      AND f.failures < ${MAX_RETRIES}
      AND (f.last_failed_at IS NULL
           OR f.last_failed_at + make_interval(secs => coalesce(rp.retry_interval_seconds, ${DEFAULT_RETRY_INTERVAL_SECONDS})) <= ?)
      AND ${ctx.inClass}`,
  [ctx.now]);

interface Exhausted {
  id: string;
  common_name: string;
  version_id: string;
  failures: string | number;
  max_retries: number;
  last_error: string | null;
  event_key: string;
}

/**
 * One RenewalFailure (and one audit event) per certificate and version whose
 * retries are used up. The event key names the version, so a certificate that is
 * renewed by hand and later fails again is reported again.
 */
export const reportExhaustedRetries: Step = async (trx, { k, stamp, batch, inClass }) => {
  const due = rowsOf<Exhausted>(await trx.raw(
    `SELECT * FROM (
       SELECT c.id, c.common_name, lv.id AS version_id, f.failures, ${MAX_RETRIES} AS max_retries,
              (SELECT j.last_error FROM jobs j WHERE j.certificate_id = c.id AND j.type = 'Renewal' AND j.status = 'Failed'
                ORDER BY j.created_at DESC, j.id DESC LIMIT 1) AS last_error,
              'renewal-retries-exhausted:' || c.id || ':' || lv.id AS event_key
       ${FAILED_RENEWALS}
          AND f.failures >= ${MAX_RETRIES} AND ${inClass}) x
      WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_key = x.event_key)
      ORDER BY x.id LIMIT ?`,
    [batch],
  ));
  if (!due.length) return 0;
  await recordNotifications(k, trx, due.map((d) => ({
    type: 'RenewalFailure' as const,
    certificate_id: d.id,
    severity: 'critical' as const,
    subject: `Certificate ${d.common_name}: renewal retries exhausted`,
    message: `Certificate ${d.id} (${d.common_name}) failed to renew ${Number(d.failures)} times in a row (retry limit ${d.max_retries}); `
      + `certctl stops retrying until someone renews it by hand.${d.last_error ? ` Last error: ${d.last_error.slice(0, 500)}` : ''}`,
    dedupe_key: d.event_key,
  })), { now: stamp });
  await k.audit.append(due.map((d) => ({
    category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'certificate_renewal_retries_exhausted', resource_type: 'certificate', resource_id: d.id,
    details: { version_id: d.version_id, failures: Number(d.failures), max_retries: d.max_retries },
  })), trx);
  return due.length;
};
