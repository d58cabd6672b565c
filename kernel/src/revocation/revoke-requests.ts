import type { Knex } from 'knex';
import { actorOf } from '../audit/audit-log.js';
import type { Principal } from '../auth/principal.js';
import type { JobRow } from '../jobs/job-states.js';
import { appError } from '../errors.js';
import type { KernelServices } from '../kernel-services.js';
import { scopeCertificates, type CertificateRow } from '../resources/certificates/certificate-model.js';
import { loadVisibleCertificate } from '../resources/certificates/certificate-store.js';
import { canonicalReason, REASON_NAMES } from './reasons.js';
import { revokeCertificates, type RevocationRow } from './revoke-service.js';
import { newId } from '../db/ids.js';

/** Larger selections are refused: split the request. Sized for a fleet-wide key compromise. */
export const MAX_BULK_REVOKE = 50_000;

const idRef = { type: 'string', minLength: 1, maxLength: 64 };
const reasonProp = { type: 'string', enum: REASON_NAMES, description: 'RFC 5280 reason (default unspecified)' };

export const revokeBody = { type: 'object', additionalProperties: false, properties: { reason: reasonProp } };

export const BULK_CRITERIA = ['certificate_ids', 'profile_id', 'owner_id', 'agent_id', 'issuer_id', 'team_id'] as const;
export const bulkRevokeBody = {
  type: 'object', additionalProperties: false, description: 'At least one criterion; all given criteria must hold',
  properties: {
    reason: reasonProp,
    certificate_ids: { type: 'array', minItems: 1, maxItems: MAX_BULK_REVOKE, uniqueItems: true, items: idRef },
    profile_id: idRef, owner_id: idRef, agent_id: idRef, issuer_id: idRef, team_id: idRef,
  },
};

type Criteria = Partial<{ certificate_ids: string[]; profile_id: string; owner_id: string; agent_id: string; issuer_id: string; team_id: string }>;

export interface Refusal {
  certificate_id: string;
  code: string;
  message: string;
}

/** Why a certificate cannot be revoked, or null when it can. */
function refusal(c: CertificateRow): Refusal | null {
  if (c.status === 'Revoked') return { certificate_id: c.id, code: 'already_revoked', message: `Certificate ${c.id} is already revoked` };
  if (!c.serial_number) return { certificate_id: c.id, code: 'not_issued', message: `Certificate ${c.id} was never issued: there is nothing to revoke` };
  return null;
}

/** POST /certificates/:id/revoke: revokes now; 409 when already revoked or never issued. */
export async function revokeOne(k: KernelServices, principal: Principal, id: string, reasonName?: string) {
  const reason = canonicalReason(reasonName);
  const now = new Date();
  return k.db.knex.transaction(async (trx) => {
    const cert = await loadVisibleCertificate(trx, id, principal, ['cert.read', 'cert.revoke'], { lock: true });
    principal.require('cert.revoke', cert);
    const why = refusal(cert);
    if (why?.code === 'already_revoked') {
      throw appError('ALREADY_REVOKED', `Certificate ${id} was revoked at ${cert.revoked_at ? new Date(cert.revoked_at).toISOString() : 'an earlier time'} (${cert.revocation_reason ?? 'unspecified'})`);
    }
    if (why) throw appError('INVALID_STATE', why.message);
    const out = await revokeCertificates(k, trx, [cert], { reason, actor: actorOf(principal), now });
    const [updated] = (await trx('managed_certificates').where({ id })) as CertificateRow[];
    const job = (await trx('jobs').where({ id: out.jobs[0].id }).first()) as JobRow;
    return { certificate: updated, revocations: out.revocations.map(serializeRevocation), job };
  });
}

function criteriaOf(body: Record<string, unknown>): Criteria {
  const given = Object.fromEntries(BULK_CRITERIA.filter((f) => body[f] !== undefined).map((f) => [f, body[f]])) as Criteria;
  if (!Object.keys(given).length) throw appError('VALIDATION_FAILED', `Give at least one criterion: ${BULK_CRITERIA.join(', ')}`, { details: [{ path: '/', message: 'no criterion' }] });
  return given;
}

async function select(trx: Knex.Transaction, principal: Principal, c: Criteria): Promise<CertificateRow[]> {
  const qb = scopeCertificates(trx('managed_certificates'), principal, 'cert.revoke');
  if (c.certificate_ids) qb.whereIn('id', c.certificate_ids);
  for (const f of ['profile_id', 'owner_id', 'issuer_id'] as const) if (c[f] !== undefined) qb.where(f, c[f]);
  if (c.team_id !== undefined) qb.whereIn('owner_id', (sub: Knex.QueryBuilder) => { sub.select('id').from('owners').where({ team_id: c.team_id }); });
  if (c.agent_id !== undefined) {
    const agentId = c.agent_id;
    qb.where((w) => {
      w.where('agent_id', agentId).orWhereIn('id', (sub: Knex.QueryBuilder) => {
        sub.select('m.certificate_id').from('certificate_target_mappings as m').join('targets as t', 't.id', 'm.target_id').where('t.agent_id', agentId);
      });
    });
  }
  const rows = (await qb.orderBy('id').limit(MAX_BULK_REVOKE + 1).forUpdate()) as CertificateRow[];
  if (rows.length > MAX_BULK_REVOKE) throw appError('VALIDATION_FAILED', `The criteria select more than ${MAX_BULK_REVOKE} certificates; narrow them or split the request`);
  return rows;
}

/**
 * POST /certificates/bulk-revoke: every matching certificate the caller may revoke
 * is revoked in one transaction (one Revocation job each, grouped by a bulk id);
 * those that cannot be (already revoked, never issued, not found) are reported and
 * the rest go ahead. One bulk_revocation_initiated audit event names the criteria.
 */
export async function bulkRevoke(k: KernelServices, principal: Principal, body: Record<string, unknown>) {
  const criteria = criteriaOf(body);
  const reason = canonicalReason(body.reason as string | undefined);
  const actor = actorOf(principal);
  const now = new Date();
  const bulkId = newId('bulkRevocation');
  return k.db.knex.transaction(async (trx) => {
    const certs = await select(trx, principal, criteria);
    const failed: Refusal[] = [];
    if (criteria.certificate_ids) {
      const got = new Set(certs.map((c) => c.id));
      for (const id of criteria.certificate_ids) if (!got.has(id)) failed.push({ certificate_id: id, code: 'not_found', message: `Certificate ${id} not found or not matching the other criteria` });
    }
    const eligible: CertificateRow[] = [];
    for (const c of certs) {
      const why = refusal(c);
      if (why) failed.push(why);
      else eligible.push(c);
    }
    const out = await revokeCertificates(k, trx, eligible, { reason, actor, now, bulkId });
    await k.audit.append({
      category: 'lifecycle', ...actor, action: 'bulk_revocation_initiated', resource_type: 'certificate', resource_id: bulkId,
      details: { criteria, reason, matched: certs.length, affected: eligible.length, failed: failed.length },
    }, trx);
    failed.sort((a, b) => a.certificate_id.localeCompare(b.certificate_id));
    const pending = out.jobs.filter((j) => j.status !== 'Completed').length;
    return {
      bulk_id: bulkId,
      criteria: { reason, ...criteria },
      matched_count: certs.length,
      affected_count: eligible.length,
      revoked_serials: out.revocations.length,
      failed_count: failed.length,
      status: pending ? 'Pending' : 'Completed',
      jobs: out.jobs.map((j) => ({ certificate_id: j.certificate_id, job_id: j.id, status: j.status })),
      failed,
    };
  });
}

/** Progress of a bulk revocation, from its jobs. */
export async function bulkRevokeReport(k: KernelServices, bulkId: string) {
  const knex = k.db.knex;
  const rows = (await knex('jobs').where('type', 'Revocation').whereRaw(`payload->>'bulk_id' = ?`, [bulkId])
    .select('status').count({ n: '*' }).groupBy('status')) as { status: string; n: string | number }[];
  if (!rows.length) throw appError('NOT_FOUND', `Bulk revocation ${bulkId} not found`);
  const byStatus = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  const failed = (await knex('jobs').where({ type: 'Revocation', status: 'Failed' }).whereRaw(`payload->>'bulk_id' = ?`, [bulkId])
    .orderBy('certificate_id').limit(1000).select('id', 'certificate_id', 'last_error')) as { id: string; certificate_id: string; last_error: string | null }[];
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  const open = total - (byStatus.Completed ?? 0) - (byStatus.Failed ?? 0) - (byStatus.Cancelled ?? 0);
  return {
    bulk_id: bulkId,
    total,
    by_status: byStatus,
    status: open ? 'Running' : (byStatus.Failed ? 'CompletedWithFailures' : 'Completed'),
    failed: failed.map((f) => ({ certificate_id: f.certificate_id, job_id: f.id, message: f.last_error ?? '' })),
  };
}

export function serializeRevocation(r: RevocationRow) {
  return {
    id: r.id, certificate_id: r.certificate_id, issuer_id: r.issuer_id, ca_id: r.ca_id, serial_number: r.serial_number,
    reason: r.reason, reason_code: r.reason_code, revoked_at: new Date(r.revoked_at).toISOString(), revoked_by: r.revoked_by,
    not_after: new Date(r.not_after).toISOString(), published: Boolean(r.ca_id) && !r.short_lived, short_lived: r.short_lived,
  };
}
