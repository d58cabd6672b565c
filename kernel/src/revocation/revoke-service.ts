import type { Knex } from 'knex';
import type { AuditActor } from '../audit/audit-log.js';
import { CANCELLABLE_JOB_STATUSES } from '../jobs/job-states.js';
import { newId } from '../db/ids.js';
import type { KernelServices } from '../kernel-services.js';
import { SHORT_LIVED_SECONDS } from '../lifecycle/lifecycle-sql.js';
import { recordNotifications, type NotificationEvent } from '../notifications/notification-events.js';
import type { CertificateRow } from '../resources/certificates/certificate-model.js';
import { authorityKeyIdOf, canonicalSerial } from './leaf-facts.js';
import { isCompromise, reasonCode, type RevocationReason } from './reasons.js';

/*
 * Revocation, set-wise: one certificate or ten thousand cost the same number of
 * statements. In the caller's transaction it (1) takes every issued, unexpired
 * version of each certificate (and the current one even if expired), (2) finds the
 * kernel CA that signed it (the leaf's AKI among the issuer's CAs), (3) records one
 * certificate_revocations row per serial, (4) moves the certificates to Revoked,
 * cancels their waiting jobs, (5) records one Revocation job per certificate, (6)
 * audits and (7) records Revocation notifications. The kernel's CRL and OCSP answer
 * for serials it signed as soon as this commits; a certificate from an external CA
 * keeps its job Pending so the job handler can tell that CA (the issuer plugin's
 * `revoke`), best-effort and retried.
 */

const CHUNK = 1000;

export interface RevokeOptions {
  reason: RevocationReason;
  actor: AuditActor;
  now: Date;
  /** Groups the jobs of one bulk request (their report reads by it). */
  bulkId?: string;
}

export interface RevocationRow {
  id: string;
  certificate_id: string | null;
  version_id: string | null;
  issuer_id: string;
  ca_id: string | null;
  serial_number: string;
  reason: string;
  reason_code: number;
  revoked_at: Date;
  revoked_by: string;
  not_after: Date;
  short_lived: boolean;
}

export interface JobSummary {
  id: string;
  certificate_id: string;
  status: string;
}

export interface RevokeOutcome {
  revocations: RevocationRow[];
  jobs: JobSummary[];
}

interface VersionRow {
  id: string;
  certificate_id: string;
  serial_number: string;
  not_before: Date;
  not_after: Date;
  pem_chain: string;
}

const chunks = <T>(list: T[], size = CHUNK): T[][] => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

/** Versions worth revoking: unexpired ones, plus the certificate's current serial whatever its age. */
async function versionsOf(trx: Knex.Transaction, certs: CertificateRow[], now: Date): Promise<VersionRow[]> {
  const out: VersionRow[] = [];
  const current = new Map(certs.map((c) => [c.id, c.serial_number]));
  for (const part of chunks(certs)) {
    const rows = (await trx('certificate_versions').whereIn('certificate_id', part.map((c) => c.id))
      .select('id', 'certificate_id', 'serial_number', 'not_before', 'not_after', 'pem_chain')) as VersionRow[];
    for (const v of rows) {
      if (new Date(v.not_after) > now || v.serial_number === current.get(v.certificate_id)) out.push(v);
    }
  }
  return out;
}

/** subject_key_id -> CA id, per issuer, for the issuers involved. */
async function caIndex(trx: Knex.Transaction, issuerIds: string[]): Promise<Map<string, Map<string, string>>> {
  const index = new Map<string, Map<string, string>>();
  if (!issuerIds.length) return index;
  const rows = (await trx('certificate_authorities').whereIn('issuer_id', issuerIds).select('id', 'issuer_id', 'subject_key_id')) as { id: string; issuer_id: string; subject_key_id: string | null }[];
  for (const r of rows) {
    if (!r.subject_key_id) continue;
    const m = index.get(r.issuer_id) ?? new Map<string, string>();
    m.set(r.subject_key_id.replace(/:/g, '').toLowerCase(), r.id);
    index.set(r.issuer_id, m);
  }
  return index;
}

async function shortLivedProfiles(trx: Knex.Transaction, certs: CertificateRow[]): Promise<Set<string>> {
  const ids = [...new Set(certs.map((c) => c.profile_id).filter((p): p is string => Boolean(p)))];
  if (!ids.length) return new Set();
  const rows = (await trx('certificate_profiles').whereIn('id', ids).where('max_ttl_seconds', '<', SHORT_LIVED_SECONDS).select('id')) as { id: string }[];
  return new Set(rows.map((r) => r.id));
}

/**
 * Revokes `certs` (already locked and checked eligible by the caller) in `trx`.
 * Serials revoked before (the unique index) are skipped, so a retried request
 * never records a serial twice.
 */
export async function revokeCertificates(k: KernelServices, trx: Knex.Transaction, certs: CertificateRow[], opts: RevokeOptions): Promise<RevokeOutcome> {
  if (!certs.length) return { revocations: [], jobs: [] };
  const { now, reason } = opts;
  const code = reasonCode(reason);
  const byId = new Map(certs.map((c) => [c.id, c]));
  const versions = await versionsOf(trx, certs, now);
  const cas = await caIndex(trx, [...new Set(certs.map((c) => c.issuer_id).filter((i): i is string => Boolean(i)))]);
  const shortProfiles = await shortLivedProfiles(trx, certs);

  const records: RevocationRow[] = versions.map((v) => {
    const cert = byId.get(v.certificate_id)!;
    const issuerId = cert.issuer_id ?? '';
    const aki = authorityKeyIdOf(v.pem_chain);
    const lifetime = new Date(v.not_after).getTime() - new Date(v.not_before).getTime();
    return {
      id: newId('revocation'),
      certificate_id: cert.id,
      version_id: v.id,
      issuer_id: issuerId,
      ca_id: (aki && cas.get(issuerId)?.get(aki)) ?? null,
      serial_number: canonicalSerial(v.serial_number),
      reason,
      reason_code: code,
      revoked_at: now,
      revoked_by: opts.actor.actor,
      not_after: new Date(v.not_after),
      short_lived: lifetime < SHORT_LIVED_SECONDS * 1000 || Boolean(cert.profile_id && shortProfiles.has(cert.profile_id)),
    };
  });
  const inserted: RevocationRow[] = [];
  for (const part of chunks(records, 5000)) inserted.push(...(await insertRevocations(trx, part)));

  const ids = certs.map((c) => c.id);
  for (const part of chunks(ids)) {
    await trx('managed_certificates').whereIn('id', part).update({ status: 'Revoked', revoked_at: now, revocation_reason: reason, updated_at: now });
  }
  await cancelWaitingJobs(k, trx, ids, opts.actor);

  // The kernel publishes what its own CAs signed: those jobs are recorded done. Certificates
  // from an external CA get a Pending job, so the handler can tell that CA (best-effort, retried).
  const external = new Set(inserted.filter((r) => !r.ca_id).map((r) => r.certificate_id));
  const serialsOf = new Map<string, string[]>();
  for (const r of inserted) serialsOf.set(r.certificate_id!, [...(serialsOf.get(r.certificate_id!) ?? []), r.serial_number]);
  const payload = (c: CertificateRow) => ({ reason, reason_code: code, serials: serialsOf.get(c.id) ?? [], notify_issuer: external.has(c.id), ...(opts.bulkId ? { bulk_id: opts.bulkId } : {}) });
  const queued = await k.jobs.enqueue(certs.filter((c) => external.has(c.id)).map((c) => ({ type: 'Revocation' as const, certificate_id: c.id, requested_by: opts.actor.actor, payload: payload(c) })), { trx, actor: opts.actor });
  const done = await insertCompletedJobs(trx, certs.filter((c) => !external.has(c.id)).map((c) => ({ certificateId: c.id, payload: payload(c) })), opts.actor.actor, now);
  const jobs: JobSummary[] = [...queued.map((j) => ({ id: j.id, certificate_id: j.certificate_id!, status: j.status })), ...done];
  const jobOf = new Map(jobs.map((j) => [j.certificate_id, j.id]));

  await k.audit.append(certs.map((c) => ({
    category: 'lifecycle' as const, ...opts.actor, action: 'certificate_revoked', resource_type: 'certificate', resource_id: c.id,
    details: { reason, reason_code: code, from: c.status, serials: serialsOf.get(c.id) ?? [], issuer_id: c.issuer_id, job_id: jobOf.get(c.id), ...(opts.bulkId ? { bulk_id: opts.bulkId } : {}) },
  })), trx);

  const events: NotificationEvent[] = certs.map((c) => ({
    type: 'Revocation',
    certificate_id: c.id,
    severity: isCompromise(reason) ? 'critical' : 'warning',
    subject: `Certificate ${c.common_name} revoked (${reason})`,
    message: `Certificate ${c.id} (${c.common_name}) was revoked by ${opts.actor.actor} at ${now.toISOString()} with reason ${reason}${serialsOf.get(c.id)?.length ? `; serials ${serialsOf.get(c.id)!.join(', ')}` : ''}.`,
    dedupe_key: `revocation:${c.id}:${now.getTime()}`,
  }));
  for (const part of chunks(events)) await recordNotifications(k, trx, part, { now });
  return { revocations: inserted, jobs };
}

/** One statement per chunk: the revocation rows not recorded before (the unique index skips repeats). */
async function insertRevocations(trx: Knex.Transaction, rows: RevocationRow[]): Promise<RevocationRow[]> {
  const col = <T>(f: (r: RevocationRow) => T) => rows.map(f);
  const result = (await trx.raw(
    `INSERT INTO certificate_revocations (id, certificate_id, version_id, issuer_id, ca_id, serial_number, reason, reason_code, revoked_at, revoked_by, not_after, short_lived)
     SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::int[], ?::timestamptz[], ?::text[], ?::timestamptz[], ?::boolean[])
     ON CONFLICT (issuer_id, serial_number) DO NOTHING
     RETURNING *`,
    [col((r) => r.id), col((r) => r.certificate_id), col((r) => r.version_id), col((r) => r.issuer_id), col((r) => r.ca_id), col((r) => r.serial_number),
      col((r) => r.reason), col((r) => r.reason_code), col((r) => r.revoked_at.toISOString()), col((r) => r.revoked_by), col((r) => r.not_after.toISOString()),
      col((r) => r.short_lived)] as unknown as Knex.RawBinding[],
  )) as { rows: RevocationRow[] };
  return result.rows;
}

/**
 * Revocation jobs whose work is already done (the kernel publishes the serials):
 * recorded Completed directly, as the job queue never has to run them.
 */
async function insertCompletedJobs(trx: Knex.Transaction, list: { certificateId: string; payload: Record<string, unknown> }[], actor: string, now: Date): Promise<JobSummary[]> {
  const out: JobSummary[] = [];
  const result = JSON.stringify({ issuer_notified: false, published_by: 'kernel' });
  for (const part of chunks(list, 5000)) {
    const ids = part.map(() => newId('job'));
    await trx.raw(
      `INSERT INTO jobs (id, type, status, certificate_id, payload, result, attempts, requested_by, scheduled_at, started_at, completed_at, created_at, updated_at)
       SELECT id, 'Revocation', 'Completed', cert, payload::jsonb, ?::jsonb, 1, ?, ?::timestamptz, ?::timestamptz, ?::timestamptz, ?::timestamptz, ?::timestamptz
         FROM unnest(?::text[], ?::text[], ?::text[]) AS v(id, cert, payload)`,
      [result, actor, now, now, now, now, now, ids, part.map((p) => p.certificateId), part.map((p) => JSON.stringify(p.payload))] as unknown as Knex.RawBinding[],
    );
    part.forEach((p, i) => out.push({ id: ids[i], certificate_id: p.certificateId, status: 'Completed' }));
  }
  return out;
}

/** Issuance, renewal and deployment jobs still waiting for a revoked certificate are cancelled. */
async function cancelWaitingJobs(k: KernelServices, trx: Knex.Transaction, certIds: string[], actor: AuditActor): Promise<void> {
  for (const part of chunks(certIds)) {
    const open = (await trx('jobs').whereIn('certificate_id', part).whereIn('status', CANCELLABLE_JOB_STATUSES).whereNot('type', 'Revocation').select('id')) as { id: string }[];
    for (const j of open) await k.jobs.cancel(j.id, { actor, reason: 'certificate revoked', trx });
  }
}
