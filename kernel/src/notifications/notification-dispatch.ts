import type { Json, NotifyRequest, NotifyResult } from '@certctl/sdk';
import { rowsOf } from '../db/raw-rows.js';
import type { KernelServices } from '../kernel-services.js';
import { PluginCallError, type PluginFailureCode } from '../plugins/host/contracts.js';

export interface DispatchOptions {
  /** Rows claimed per round. */
  batchSize?: number;
  /** Plugin calls in flight at once. */
  concurrency?: number;
  /** Deadline of one notify call (the plugins' own HTTP timeout is 10 s). */
  callTimeoutMs?: number;
  /** Attempts before a row is marked failed. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to backoffMaxMs. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Rounds per run at most (a run ends earlier when nothing is due). */
  maxRounds?: number;
  signal?: AbortSignal;
}

export const DISPATCH_DEFAULTS: Required<Omit<DispatchOptions, 'signal'>> = {
  batchSize: 50, concurrency: 4, callTimeoutMs: 15_000, maxAttempts: 5, backoffBaseMs: 30_000, backoffMaxMs: 3_600_000, maxRounds: 20,
};

export interface DispatchResult {
  claimed: number;
  sent: number;
  retrying: number;
  failed: number;
}

interface ClaimedRow {
  id: string;
  type: NotifyRequest['type'];
  severity: NotifyRequest['severity'];
  certificate_id: string | null;
  notifier_id: string | null;
  recipient: string;
  subject: string;
  message: string;
  attempts: number;
}

type Outcome = { status: 'sent' } | { status: 'failed'; reason: string; retryable: boolean };

/** Failures of the plugin host worth another try: the plugin or its runner may come back. */
const RETRYABLE_CALL_FAILURES: ReadonlySet<PluginFailureCode> = new Set(['timeout', 'crashed', 'unavailable', 'plugin_error', 'memory_limit', 'cpu_limit']);
const MAX_ERROR_CHARS = 1000;

/**
 * One run of the notification dispatcher: claims due pending rows in batches
 * (FOR UPDATE SKIP LOCKED plus a lease, so replicas never send the same row),
 * sends each through its notifier instance's plugin with a per-call deadline
 * and bounded concurrency, and records each row's outcome on its own: sent;
 * failed but retryable -> pending again after exponential backoff; failed for
 * good after maxAttempts or a non-retryable failure. One channel failing or
 * hanging never holds up the others. No transaction is open while a plugin runs.
 */
export async function dispatchNotifications(k: KernelServices, options: DispatchOptions = {}): Promise<DispatchResult> {
  const o = { ...DISPATCH_DEFAULTS, ...options };
  const total: DispatchResult = { claimed: 0, sent: 0, retrying: 0, failed: 0 };
  const leaseOwner = `${k.replicaId}:notifications`;
  // Longer than any call can take, so a lease only runs out when its replica is gone.
  const leaseMs = o.callTimeoutMs * 2 + 30_000;
  for (let round = 0; round < o.maxRounds && !o.signal?.aborted; round++) {
    const claimed = rowsOf<ClaimedRow>(await k.db.knex.raw(
      `WITH due AS (
         SELECT id FROM notifications
          WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
            AND (lease_expires_at IS NULL OR lease_expires_at <= now())
          ORDER BY created_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
       UPDATE notifications n SET lease_owner = ?, lease_expires_at = now() + ? * interval '1 millisecond', attempts = n.attempts + 1, updated_at = now()
         FROM due WHERE n.id = due.id
       RETURNING n.id, n.type, n.severity, n.certificate_id, n.notifier_id, n.recipient, n.subject, n.message, n.attempts`,
      [o.batchSize, leaseOwner, leaseMs],
    ));
    if (!claimed.length) break;
    total.claimed += claimed.length;
    const deliveries = await prepareDeliveries(k, claimed);
    await eachLimited(claimed, o.concurrency, async (row) => {
      try {
        const outcome = await deliver(k, row, deliveries, o.callTimeoutMs);
        total[await settle(k, row, outcome, leaseOwner, o)]++;
      } catch (err) {
        // The row keeps its lease and comes back when it runs out.
        k.log.error({ notification_id: row.id, err: (err as Error)?.message }, 'notification outcome not recorded');
      }
    });
    if (claimed.length < o.batchSize) break;
  }
  return total;
}

interface NotifierRow { id: string; type: string; enabled: boolean }
interface CertificateRow { id: string; common_name: string; expires_at: Date | string | null; status: string }

interface Deliveries {
  notifiers: Map<string, NotifierRow>;
  certificates: Map<string, CertificateRow>;
}

/** The notifier instances and certificates of a batch, two queries for the whole batch. */
async function prepareDeliveries(k: KernelServices, rows: ClaimedRow[]): Promise<Deliveries> {
  const knex = k.db.knex;
  const notifierIds = [...new Set(rows.map((r) => r.notifier_id).filter((x): x is string => Boolean(x)))];
  const certIds = [...new Set(rows.map((r) => r.certificate_id).filter((x): x is string => Boolean(x)))];
  const [notifiers, certificates] = await Promise.all([
    notifierIds.length ? knex('notifiers').whereIn('id', notifierIds).select('id', 'type', 'enabled') : [],
    certIds.length ? knex('managed_certificates').whereIn('id', certIds).select('id', 'common_name', 'expires_at', 'status') : [],
  ]);
  return {
    notifiers: new Map((notifiers as NotifierRow[]).map((n) => [n.id, n])),
    certificates: new Map((certificates as CertificateRow[]).map((c) => [c.id, c])),
  };
}

function notifyRequestOf(row: ClaimedRow, cert: CertificateRow | undefined): NotifyRequest {
  const recipients = row.recipient.split(',').map((r) => r.trim()).filter(Boolean);
  return {
    notificationId: row.id, type: row.type, severity: row.severity, subject: row.subject, message: row.message, recipients,
    ...(cert ? {
      certificate: {
        id: cert.id, commonName: cert.common_name, status: cert.status,
        expiresAt: cert.expires_at ? new Date(cert.expires_at).toISOString() : null,
      },
    } : {}),
  };
}

async function deliver(k: KernelServices, row: ClaimedRow, d: Deliveries, timeoutMs: number): Promise<Outcome> {
  if (!row.notifier_id) return { status: 'failed', reason: 'not delivered: no enabled notifier routes this event', retryable: false };
  const notifier = d.notifiers.get(row.notifier_id);
  if (!notifier) return { status: 'failed', reason: `notifier ${row.notifier_id} no longer exists`, retryable: false };
  if (!notifier.enabled) return { status: 'failed', reason: `notifier ${notifier.id} is disabled`, retryable: false };
  const request = notifyRequestOf(row, row.certificate_id ? d.certificates.get(row.certificate_id) : undefined);
  try {
    const result = (await k.pluginHost.call(notifier.type, notifier.id, 'notify', request as unknown as Json, { timeoutMs })) as unknown as NotifyResult;
    return result.status === 'sent' ? { status: 'sent' } : { status: 'failed', reason: result.reason, retryable: result.retryable };
  } catch (err) {
    if (err instanceof PluginCallError) return { status: 'failed', reason: `${err.code}: ${err.message}`, retryable: RETRYABLE_CALL_FAILURES.has(err.code) };
    return { status: 'failed', reason: `notify failed: ${(err as Error)?.message ?? String(err)}`, retryable: true };
  }
}

/** Delay before the attempt after `attempts` failed ones. */
export const backoffMs = (attempts: number, baseMs: number, maxMs: number): number => Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));

/**
 * Writes a row's outcome, only while this replica still holds its lease (a
 * row whose lease ran out may already be with another replica).
 */
async function settle(k: KernelServices, row: ClaimedRow, outcome: Outcome, leaseOwner: string, o: Required<Omit<DispatchOptions, 'signal'>>): Promise<'sent' | 'retrying' | 'failed'> {
  const knex = k.db.knex;
  const mine = () => knex('notifications').where({ id: row.id, lease_owner: leaseOwner, status: 'pending' });
  const released = { lease_owner: null, lease_expires_at: null, updated_at: knex.fn.now() };
  if (outcome.status === 'sent') {
    await mine().update({ ...released, status: 'sent', sent_at: knex.fn.now(), error: null, next_attempt_at: null });
    return 'sent';
  }
  const error = outcome.reason.slice(0, MAX_ERROR_CHARS);
  if (outcome.retryable && row.attempts < o.maxAttempts) {
    const delay = backoffMs(row.attempts, o.backoffBaseMs, o.backoffMaxMs);
    await mine().update({ ...released, error, next_attempt_at: knex.raw(`now() + ? * interval '1 millisecond'`, [delay]) });
    k.log.warn({ notification_id: row.id, notifier_id: row.notifier_id, attempts: row.attempts, retry_in_ms: delay, err: error }, 'notification not delivered; will retry');
    return 'retrying';
  }
  await mine().update({ ...released, status: 'failed', error, next_attempt_at: null });
  k.log.warn({ notification_id: row.id, notifier_id: row.notifier_id, attempts: row.attempts, err: error }, 'notification failed');
  return 'failed';
}

/** Runs fn over items with at most `limit` in flight. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
