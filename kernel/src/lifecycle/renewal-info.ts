import type { Knex } from 'knex';
import type { RenewalInfo } from '@certctl/sdk';
import type { KernelServices } from '../kernel-services.js';
import type { Step, StepContext } from './expiry-check.js';
import { pemCertificates } from '../crypto/der.js';
import { rowsOf } from '../db/raw-rows.js';
import { NO_OPEN_ISSUING_JOB } from './lifecycle-sql.js';
import { renewSelected } from './renewal-requests.js';

/**
 * CA-directed renewal timing (ACME Renewal Information, RFC 9773). An issuer plugin
 * whose manifest lists the `renewal-info` feature implements `renewalInfo`, which
 * returns the window in which the CA wants the certificate renewed. The expiry loop
 * asks for each auto-renewing Active/Expiring certificate of such an issuer when its
 * last answer is due for a refresh, stores the window with a time picked at random
 * inside it (once per window: spreading renewals is the point of the window), and
 * queues the Renewal when that time has come, even before the policy's renewal window.
 * Until then the threshold rule holds back an Expiring certificate whose picked time
 * is still before its expiry. A failed fetch is logged and stored; the threshold rule
 * then decides as if there were no window.
 */

/** The manifest feature that says an issuer plugin implements renewalInfo. */
export const RENEWAL_INFO_FEATURE = 'renewal-info';

/** How often to ask when the issuer gives no Retry-After (RFC 9773 suggests a few times a day). */
export const DEFAULT_CHECK_SECONDS = 6 * 3600;
/** Retry-After is honoured within these bounds: not a hot loop, and at least daily. */
export const MIN_CHECK_SECONDS = 60;
export const MAX_CHECK_SECONDS = 24 * 3600;
/** After a failed fetch. */
export const ERROR_RETRY_SECONDS = 3600;
const CALL_TIMEOUT_MS = 20_000;
const CONCURRENCY = 4;

/** Plugin ids of the enabled issuer plugins that implement renewalInfo. */
export function renewalInfoIssuerTypes(k: Pick<KernelServices, 'plugins'>): string[] {
  return k.plugins.list()
    .filter((e) => e.kind === 'issuer' && e.status === 'enabled' && e.features.includes(RENEWAL_INFO_FEATURE) && k.plugins.get(e.id) === e)
    .map((e) => e.id);
}

/** SQL: certificate `c` has a stored renewal time for its current version that is still ahead of `?` and before its expiry. */
export const ARI_HOLDS_RENEWAL = `EXISTS (SELECT 1 FROM certificate_renewal_info ri WHERE ri.certificate_id = c.id
  AND ri.serial_number = c.serial_number AND ri.selected_at > ? AND ri.selected_at < c.expires_at)`;

interface DueCheck {
  id: string;
  serial_number: string;
  issuer_id: string;
  issuer_type: string;
  pem_chain: string;
  prev_serial: string | null;
  prev_start: Date | null;
  prev_end: Date | null;
  prev_selected: Date | null;
  prev_explanation: string | null;
}

interface RenewalInfoRow {
  certificate_id: string;
  serial_number: string;
  window_start: Date | null;
  window_end: Date | null;
  selected_at: Date | null;
  explanation_url: string | null;
  checked_at: Date;
  next_check_at: Date;
  last_error: string | null;
  updated_at: Date;
}

/**
 * Fetches renewal windows that are due (never fetched for this version, or past
 * next_check_at), a batch at a time: the certificates are read, the plugins called
 * with no transaction open, and the answers written with one statement per batch.
 * Returns how many were fetched.
 */
export async function refreshRenewalInfo(ctx: StepContext, issuerTypes: string[]): Promise<number> {
  const { k, now, batch, inClass } = ctx;
  let total = 0;
  for (;;) {
    if (ctx.signal?.aborted) return total;
    const due = rowsOf<DueCheck>(await k.db.knex.raw(
      `SELECT c.id, c.serial_number, i.id AS issuer_id, i.type AS issuer_type, v.pem_chain,
              ri.serial_number AS prev_serial, ri.window_start AS prev_start, ri.window_end AS prev_end,
              ri.selected_at AS prev_selected, ri.explanation_url AS prev_explanation
         FROM managed_certificates c
         JOIN issuers i ON i.id = c.issuer_id AND i.enabled AND i.type = ANY(?)
         LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
         LEFT JOIN certificate_renewal_info ri ON ri.certificate_id = c.id
        CROSS JOIN LATERAL (SELECT cv.pem_chain FROM certificate_versions cv WHERE cv.certificate_id = c.id AND cv.serial_number = c.serial_number
                             ORDER BY cv.created_at DESC LIMIT 1) v
        WHERE c.status IN ('Active', 'Expiring') AND coalesce(rp.auto_renew, true)
          AND (ri.certificate_id IS NULL OR ri.serial_number <> c.serial_number OR ri.next_check_at <= ?)
          AND ${NO_OPEN_ISSUING_JOB} AND ${inClass}
        ORDER BY c.id LIMIT ?`,
      [issuerTypes, now, batch],
    ));
    if (!due.length) return total;
    const rows = await mapLimit(due, CONCURRENCY, (d) => fetchOne(ctx, d));
    await k.db.knex('certificate_renewal_info').insert(rows).onConflict('certificate_id').merge();
    total += due.length;
    if (due.length < batch) return total;
  }
}

async function fetchOne({ k, now, stamp }: StepContext, d: DueCheck): Promise<RenewalInfoRow> {
  const sameVersion = d.prev_serial === d.serial_number;
  const base = { certificate_id: d.id, serial_number: d.serial_number, checked_at: now, updated_at: stamp };
  const after = (seconds: number) => new Date(now.getTime() + seconds * 1000);
  try {
    const [leaf] = pemCertificates(d.pem_chain);
    if (!leaf) throw new Error(`the stored version of serial ${d.serial_number} holds no certificate`);
    const info = (await k.pluginHost.call(d.issuer_type, d.issuer_id, 'renewalInfo', { certificatePem: leaf }, { timeoutMs: CALL_TIMEOUT_MS })) as RenewalInfo | null;
    const check = info?.retryAfterSeconds ? Math.min(Math.max(info.retryAfterSeconds, MIN_CHECK_SECONDS), MAX_CHECK_SECONDS) : DEFAULT_CHECK_SECONDS;
    if (!info) return { ...base, window_start: null, window_end: null, selected_at: null, explanation_url: null, next_check_at: after(check), last_error: null };
    const start = new Date(info.suggestedWindow.start);
    const end = new Date(info.suggestedWindow.end);
    if (!(end.getTime() > start.getTime())) throw new Error(`the suggested window ${info.suggestedWindow.start} .. ${info.suggestedWindow.end} is empty`);
    // The same window keeps its picked time: re-picking on every fetch would drift towards the window's start.
    const unchanged = sameVersion && d.prev_selected && d.prev_start?.getTime() === start.getTime() && d.prev_end?.getTime() === end.getTime();
    const selected = unchanged ? d.prev_selected! : new Date(start.getTime() + Math.floor(Math.random() * (end.getTime() - start.getTime())));
    return { ...base, window_start: start, window_end: end, selected_at: selected, explanation_url: info.explanationUrl ?? null, next_check_at: after(check), last_error: null };
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    k.log.warn({ certificate_id: d.id, issuer_id: d.issuer_id, err: message }, 'renewal info fetch failed; the renewal threshold applies');
    // The last window the CA gave for this version stays (it was its word); a new version has none yet.
    return {
      ...base,
      window_start: sameVersion ? d.prev_start : null,
      window_end: sameVersion ? d.prev_end : null,
      selected_at: sameVersion ? d.prev_selected : null,
      explanation_url: sameVersion ? d.prev_explanation : null,
      next_check_at: after(ERROR_RETRY_SECONDS),
      last_error: message.slice(0, 1000),
    };
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Queues a Renewal (trigger `ari`) for each certificate whose picked renewal time has come. */
export function queueAriRenewals(issuerTypes: string[]): Step {
  return (trx, ctx) => renewSelected(trx, ctx, 'ari',
    `FROM managed_certificates c
       JOIN issuers i ON i.id = c.issuer_id AND i.type = ANY(?)
       JOIN certificate_renewal_info ri ON ri.certificate_id = c.id AND ri.serial_number = c.serial_number
       LEFT JOIN renewal_policies rp ON rp.id = c.renewal_policy_id
      WHERE c.status IN ('Active', 'Expiring', 'Expired') AND coalesce(rp.auto_renew, true) AND ri.selected_at <= ?
        AND ${NO_OPEN_ISSUING_JOB} AND ${ctx.inClass}`,
    [issuerTypes, ctx.now]);
}

/** The API's view of a certificate's renewal window (GET /api/v1/certificates/:id `renewal_info`). */
export interface RenewalInfoView {
  suggested_window: { start: Date; end: Date } | null;
  selected_at: Date | null;
  explanation_url: string | null;
  checked_at: Date;
  next_check_at: Date;
  last_error: string | null;
}

/** The stored window for the certificate's current version, or null (not an ARI issuer, or not fetched yet). */
export async function renewalInfoView(db: Knex, cert: { id: string; serial_number: string | null }): Promise<RenewalInfoView | null> {
  if (!cert.serial_number) return null;
  const row = (await db('certificate_renewal_info').where({ certificate_id: cert.id, serial_number: cert.serial_number }).first()) as RenewalInfoRow | undefined;
  if (!row) return null;
  return {
    suggested_window: row.window_start && row.window_end ? { start: row.window_start, end: row.window_end } : null,
    selected_at: row.selected_at,
    explanation_url: row.explanation_url,
    checked_at: row.checked_at,
    next_check_at: row.next_check_at,
    last_error: row.last_error,
  };
}
