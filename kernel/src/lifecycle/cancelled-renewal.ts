import type { Knex } from 'knex';
import { SYSTEM_ACTOR, type AuditActor, type AuditLog } from '../audit/audit-log.js';
import { rowsOf } from '../db/raw-rows.js';
import { classFilter, LATEST_ISSUING_JOB, NO_OPEN_ISSUING_JOB, RENEWAL_WINDOW, type CertificateClass } from './lifecycle-sql.js';

export interface SettleOptions {
  /** The clock the expiry is judged against. */
  now: Date;
  /** Written to updated_at (defaults to now). */
  stamp?: Date;
  /** Only these certificates (a cancel or a rejection); otherwise a sweep of every stuck one. */
  certificateIds?: string[];
  /** Sweep size. */
  limit?: number;
  certificateClass?: CertificateClass;
  actor?: AuditActor;
}

/**
 * A certificate left RenewalInProgress after its renewal was cancelled (turned down,
 * timed out, cancelled, or its certificate's jobs cancelled) returns to the status its
 * expiry gives it, so it is alerted on and, if auto-renewing, asked for again. The one
 * place that decides this: the job cancel route, approval rejections and timeouts, and
 * the expiry loop's sweep all call it in their own transaction. A certificate another
 * transaction holds is skipped rather than waited for (waiting could deadlock with a
 * request that holds the certificate and wants the job); the loop's sweep settles it
 * on its next pass. Returns how many moved.
 */
export async function settleCancelledRenewals(trx: Knex.Transaction, audit: Pick<AuditLog, 'append'>, opts: SettleOptions): Promise<number> {
  const ids = opts.certificateIds;
  if (ids && !ids.length) return 0;
  const sweep = !ids;
  const rows = rowsOf<{ id: string; from_status: string; to_status: string }>(await trx.raw(
    `WITH stuck AS (
       SELECT c.id, c.status AS from_status,
              CASE WHEN c.expires_at <= ? THEN 'Expired'
                   WHEN c.expires_at <= ?::timestamptz + ${RENEWAL_WINDOW} THEN 'Expiring'
                   ELSE 'Active' END AS to_status
         FROM managed_certificates c
         LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
        CROSS JOIN LATERAL (${LATEST_ISSUING_JOB}) lj
        WHERE c.status = 'RenewalInProgress' AND c.expires_at IS NOT NULL AND ${NO_OPEN_ISSUING_JOB}
          AND ${classFilter(opts.certificateClass ?? 'all')}
          ${sweep ? '' : 'AND c.id = ANY(?)'}
          AND lj.status = 'Cancelled'
        ORDER BY c.id LIMIT ? FOR UPDATE OF c SKIP LOCKED)
     UPDATE managed_certificates c SET status = stuck.to_status, updated_at = ?
       FROM stuck WHERE c.id = stuck.id
     RETURNING c.id, stuck.from_status, stuck.to_status`,
    [opts.now, opts.now, ...(sweep ? [] : [ids]), sweep ? opts.limit ?? 500 : ids!.length, opts.stamp ?? opts.now],
  ));
  if (rows.length) {
    await audit.append(rows.map((r) => ({
      category: 'lifecycle' as const, ...(opts.actor ?? SYSTEM_ACTOR), action: 'certificate_status_changed', resource_type: 'certificate', resource_id: r.id,
      details: { from: r.from_status, to: r.to_status, reason: 'renewal_cancelled' },
    })), trx);
  }
  return rows.length;
}
