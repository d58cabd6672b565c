import crypto from 'node:crypto';
import type { Json, NotifyRequest, NotifyResult } from '@certctl/sdk';
import { SYSTEM_ACTOR, type AuditActor } from '../audit/audit-log.js';
import { ENV_IDS } from '../bootstrap/env-instances.js';
import { rowsOf } from '../db/raw-rows.js';
import type { KernelServices } from '../kernel-services.js';
import { PluginCallError } from '../plugins/host/contracts.js';
import type { LoopDef } from '../scheduler/scheduler.js';
import { digestSubject, gatherDigest, renderDigestHtml, renderDigestText, type DigestData } from './digest-content.js';

/*
 * The digest e-mail (CERTCTL_DIGEST_*): sent through an e-mail notifier (the one from
 * CERTCTL_SMTP_* when there is one, else the first enabled e-mail notifier by name) to
 * CERTCTL_DIGEST_RECIPIENTS, or to the owners of certificates when that is empty. The
 * scheduled send is claimed in digest_state (migration 018): at most once per interval
 * across all kernels and restarts. Every send is audited.
 */

const CALL_TIMEOUT_MS = 15_000;
/** After a failed scheduled send, the next try comes this soon (or after the interval, if shorter). */
const RETRY_AFTER_MS = 15 * 60_000;
/** The loop looks this often at most; the claim decides whether a digest is due. */
const LOOP_MAX_MS = 5 * 60_000;

export type DigestOutcome = { status: 'sent'; notifier_id: string; recipients: number } | { status: 'failed'; reason: string };

/** The e-mail notifier the digest goes through, or null. */
export async function digestNotifier(k: KernelServices): Promise<{ id: string; type: string } | null> {
  const rows = (await k.db.knex('notifiers').where({ type: 'email', enabled: true }).select('id', 'type', 'name')) as { id: string; type: string; name: string }[];
  return rows.find((r) => r.id === ENV_IDS.email) ?? rows.sort((a, b) => a.name.localeCompare(b.name))[0] ?? null;
}

/** The digest is configured when it is enabled and an e-mail notifier can carry it. */
export async function digestConfigured(k: KernelServices): Promise<boolean> {
  return k.config.bootstrap.digest.enabled && (await digestNotifier(k)) !== null;
}

/** CERTCTL_DIGEST_RECIPIENTS, else the e-mail addresses of the owners of live certificates. */
export async function digestRecipients(k: KernelServices): Promise<string[]> {
  const configured = k.config.bootstrap.digest.recipients;
  if (configured.length) return configured;
  const rows = (await k.db.knex('owners').join('managed_certificates', 'managed_certificates.owner_id', 'owners.id')
    .whereNot('managed_certificates.status', 'Archived').whereNot('owners.email', '').distinct('owners.email')) as { email: string }[];
  return rows.map((r) => r.email).sort();
}

export async function buildDigest(k: KernelServices): Promise<{ data: DigestData; subject: string; html: string; text: string }> {
  const data = await gatherDigest(k, k.config.bootstrap.digest.intervalMs);
  return { data, subject: digestSubject(data), html: renderDigestHtml(data), text: renderDigestText(data) };
}

/** Builds and sends one digest now, and audits the outcome (trigger: the schedule or an API caller). */
export async function sendDigest(k: KernelServices, actor: AuditActor, trigger: 'schedule' | 'api'): Promise<DigestOutcome> {
  const notifier = await digestNotifier(k);
  const recipients = await digestRecipients(k);
  let outcome: DigestOutcome;
  let counts: Record<string, number> = {};
  if (!notifier) outcome = { status: 'failed', reason: 'no enabled e-mail notifier (set CERTCTL_SMTP_HOST or create one)' };
  else if (!recipients.length) outcome = { status: 'failed', reason: 'no recipients: set CERTCTL_DIGEST_RECIPIENTS or give certificate owners e-mail addresses' };
  else {
    const digest = await buildDigest(k);
    counts = { certificates: digest.data.certificates.total, expiring: digest.data.certificates.expiring, expired: digest.data.certificates.expired };
    const request: NotifyRequest = {
      notificationId: `digest-${crypto.randomBytes(6).toString('hex')}`, type: 'Digest', severity: 'info',
      subject: digest.subject, message: digest.text, html: digest.html, recipients,
    };
    let result: NotifyResult;
    try {
      result = (await k.pluginHost.call(notifier.type, notifier.id, 'notify', request as unknown as Json, { timeoutMs: CALL_TIMEOUT_MS })) as unknown as NotifyResult;
    } catch (err) {
      result = { status: 'failed', reason: err instanceof PluginCallError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err), retryable: true };
    }
    outcome = result.status === 'sent' ? { status: 'sent', notifier_id: notifier.id, recipients: recipients.length } : { status: 'failed', reason: result.reason.slice(0, 500) };
  }
  await k.audit.append({
    category: 'lifecycle', ...actor, action: outcome.status === 'sent' ? 'digest_sent' : 'digest_failed', resource_type: 'digest', resource_id: 'digest',
    details: { trigger, notifier_id: notifier?.id ?? null, recipients: recipients.length, ...counts, ...(outcome.status === 'failed' ? { reason: outcome.reason } : {}) },
  });
  return outcome;
}

/** Claims the scheduled send when the last claim is an interval old. True: this kernel sends. */
async function claimScheduled(k: KernelServices, intervalMs: number): Promise<boolean> {
  const claimed = rowsOf<{ id: string }>(await k.db.knex.raw(
    `UPDATE digest_state SET claimed_at = now(), updated_at = now()
      WHERE id = 'digest' AND (claimed_at IS NULL OR claimed_at <= now() - ? * interval '1 millisecond')
      RETURNING id`,
    [intervalMs],
  ));
  return claimed.length === 1;
}

/** One scheduled run: claim, send, record. A failure moves the claim back so the next try is RETRY_AFTER_MS away. */
export async function runScheduledDigest(k: KernelServices): Promise<DigestOutcome | null> {
  const { intervalMs } = k.config.bootstrap.digest;
  if (!(await claimScheduled(k, intervalMs))) return null;
  const outcome = await sendDigest(k, SYSTEM_ACTOR, 'schedule');
  const knex = k.db.knex;
  if (outcome.status === 'sent') {
    await knex('digest_state').where({ id: 'digest' }).update({ last_sent_at: knex.fn.now(), last_error: null, updated_at: knex.fn.now() });
  } else {
    const back = Math.max(0, intervalMs - Math.min(RETRY_AFTER_MS, intervalMs));
    await knex('digest_state').where({ id: 'digest' }).update({
      claimed_at: knex.raw(`claimed_at - ? * interval '1 millisecond'`, [back]), last_error: outcome.reason, updated_at: knex.fn.now(),
    });
    k.log.warn({ reason: outcome.reason }, 'digest not sent; will retry');
  }
  return outcome;
}

/** The digest loop, when CERTCTL_DIGEST_ENABLED is on. */
export function digestLoops(k: KernelServices): LoopDef[] {
  const { enabled, intervalMs } = k.config.bootstrap.digest;
  if (!enabled) return [];
  return [{
    name: 'digest',
    intervalMs: Math.min(intervalMs, LOOP_MAX_MS),
    tick: async () => {
      const outcome = await runScheduledDigest(k);
      if (outcome?.status === 'sent') k.log.info({ notifier: outcome.notifier_id, recipients: outcome.recipients }, 'digest sent');
    },
  }];
}
