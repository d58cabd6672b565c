import { OPEN_JOB_STATUSES } from '../jobs/job-states.js';
import { DEFAULT_RENEWAL_WINDOW_DAYS } from './expiry-status.js';
import { ISSUING_JOB_TYPES } from './issuance-jobs.js';

/**
 * SQL fragments the expiry steps, the short-lived loop and the settle step share, so
 * "short-lived", "renewal window" and "has an open issuing job" mean one thing everywhere.
 * Each expects the certificate aliased `c` (and its renewal policy `rp` for the window).
 */

export const sqlList = (values: readonly string[]) => values.map((v) => `'${v.replace(/'/g, "''")}'`).join(', ');

/** Certificates living under an hour: a profile capping them below it, or an issued lifetime below it. */
export const SHORT_LIVED_SECONDS = 3600;
export const SHORT_LIVED = `(coalesce(c.expires_at - c.not_before < interval '${SHORT_LIVED_SECONDS} seconds', false)
  OR EXISTS (SELECT 1 FROM certificate_profiles slp WHERE slp.id = c.profile_id AND slp.max_ttl_seconds < ${SHORT_LIVED_SECONDS}))`;

/**
 * How long before expiry a certificate counts as Expiring. Day-sized policy windows
 * would keep a ten-minute certificate permanently due, so a short-lived one is due in
 * the last third of its life (its issued lifetime, else its profile's cap).
 */
export const RENEWAL_WINDOW = `(CASE WHEN ${SHORT_LIVED}
  THEN coalesce(c.expires_at - c.not_before,
                (SELECT make_interval(secs => wp.max_ttl_seconds) FROM certificate_profiles wp WHERE wp.id = c.profile_id)) / 3
  ELSE make_interval(days => coalesce(rp.renewal_window_days, ${DEFAULT_RENEWAL_WINDOW_DAYS})) END)`;

export const NO_OPEN_ISSUING_JOB = `NOT EXISTS (SELECT 1 FROM jobs j WHERE j.certificate_id = c.id
  AND j.type IN (${sqlList(ISSUING_JOB_TYPES)}) AND j.status IN (${sqlList(OPEN_JOB_STATUSES)}))`;

/** The certificate's newest issuing job (id, type, status, last_error): `CROSS JOIN LATERAL (${LATEST_ISSUING_JOB}) lj`. */
export const LATEST_ISSUING_JOB = `SELECT j.id, j.type, j.status, j.last_error FROM jobs j
  WHERE j.certificate_id = c.id AND j.type IN (${sqlList(ISSUING_JOB_TYPES)})
  ORDER BY j.created_at DESC, j.id DESC LIMIT 1`;

/** Which certificates a pass looks at: the hourly loop skips short-lived ones, which have their own loop. */
export type CertificateClass = 'standard' | 'short-lived' | 'all';

export function classFilter(cls: CertificateClass): string {
  if (cls === 'short-lived') return SHORT_LIVED;
  if (cls === 'standard') return `NOT ${SHORT_LIVED}`;
  return 'true';
}
