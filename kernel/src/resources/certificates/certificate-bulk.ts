import type { Knex } from 'knex';
import { actorOf, type AuditActor } from '../../audit/audit-log.js';
import type { Permission } from '../../auth/permissions.js';
import type { Principal } from '../../auth/principal.js';
import { appError } from '../../errors.js';
import type { KernelServices } from '../../kernel-services.js';
import { openIssuingJobs } from '../../lifecycle/issuance-jobs.js';
import { askClientToRenew, renewalRefusal, renewedByClient, requestNewVersions } from '../../lifecycle/renewal-requests.js';
import { CERTIFICATE_STATUSES, scopeCertificates, type CertificateRow } from './certificate-model.js';
import { checkReferences } from './certificate-store.js';

/*
 * Bulk renew and bulk reassign: one request selects certificates by explicit ids
 * and/or filters (all given criteria must hold), each selected certificate is handled
 * on its own terms (a revoked one is reported, not renewed), and what could not be done
 * is reported per certificate while the rest goes ahead. One transaction per request,
 * one audit event for the request (criteria and actor) plus the usual per-certificate ones.
 */

/** More than this many matches is refused: narrow the criteria or split the request. */
export const MAX_BULK_CERTIFICATES = 5000;

const idRef = { type: 'string', minLength: 1, maxLength: 64 };
export const CRITERIA_FIELDS = ['certificate_ids', 'profile_id', 'owner_id', 'agent_id', 'issuer_id', 'team_id', 'status'] as const;
const criteriaProperties = {
  certificate_ids: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: idRef, description: 'These certificates' },
  profile_id: { ...idRef, description: 'Certificates issued under this profile' },
  owner_id: { ...idRef, description: 'Certificates owned by this owner' },
  agent_id: { ...idRef, description: 'Certificates of this agent, or deployed to one of its targets' },
  issuer_id: { ...idRef, description: 'Certificates from this issuer' },
  team_id: { ...idRef, description: 'Certificates whose owner is in this team' },
  status: { type: 'string', enum: CERTIFICATE_STATUSES, description: 'Certificates in this status' },
};

export const bulkRenewBody = { type: 'object', additionalProperties: false, properties: criteriaProperties, description: 'At least one criterion' };
export const bulkReassignBody = {
  type: 'object', additionalProperties: false, required: ['new_owner_id'],
  properties: { ...criteriaProperties, new_owner_id: { type: ['string', 'null'], minLength: 1, maxLength: 64, description: 'The new owner (null: no owner)' } },
  description: 'At least one criterion, and the new owner',
};

export type Criteria = Partial<{ certificate_ids: string[]; profile_id: string; owner_id: string; agent_id: string; issuer_id: string; team_id: string; status: string }>;

export interface BulkFailure {
  certificate_id: string;
  code: string;
  message: string;
}

/** The criteria actually given; 400 when there are none (a bulk action on "everything" is never implied). */
function criteriaOf(body: Record<string, unknown>): Criteria {
  const given = Object.fromEntries(CRITERIA_FIELDS.filter((f) => body[f] !== undefined).map((f) => [f, body[f]])) as Criteria;
  if (!Object.keys(given).length) {
    throw appError('VALIDATION_FAILED', `Give at least one criterion: ${CRITERIA_FIELDS.join(', ')}`, { details: [{ path: '/', message: 'no criterion' }] });
  }
  return given;
}

/** Locks and returns the certificates the criteria select within the caller's `permission` scope. */
async function selectCertificates(trx: Knex.Transaction, principal: Principal, permission: Permission, c: Criteria): Promise<CertificateRow[]> {
  const qb = scopeCertificates(trx('managed_certificates'), principal, permission);
  if (c.certificate_ids) qb.whereIn('id', c.certificate_ids);
  for (const f of ['profile_id', 'owner_id', 'issuer_id', 'status'] as const) if (c[f] !== undefined) qb.where(f, c[f]);
  if (c.team_id !== undefined) qb.whereIn('owner_id', (sub: Knex.QueryBuilder) => { sub.select('id').from('owners').where({ team_id: c.team_id }); });
  if (c.agent_id !== undefined) {
    const agentId = c.agent_id;
    qb.where((w) => {
      w.where('agent_id', agentId).orWhereIn('id', (sub: Knex.QueryBuilder) => {
        sub.select('m.certificate_id').from('certificate_target_mappings as m').join('targets as t', 't.id', 'm.target_id').where('t.agent_id', agentId);
      });
    });
  }
  const rows = (await qb.orderBy('id').limit(MAX_BULK_CERTIFICATES + 1).forUpdate()) as CertificateRow[];
  if (rows.length > MAX_BULK_CERTIFICATES) {
    throw appError('VALIDATION_FAILED', `The criteria select more than ${MAX_BULK_CERTIFICATES} certificates; narrow them or split the request`);
  }
  return rows;
}

/** Explicit ids the selection left out: invisible ones read as missing, others did not meet the other criteria. */
async function missedIds(trx: Knex.Transaction, principal: Principal, permission: Permission, c: Criteria, selected: CertificateRow[]): Promise<BulkFailure[]> {
  if (!c.certificate_ids) return [];
  const got = new Set(selected.map((r) => r.id));
  const missed = c.certificate_ids.filter((id) => !got.has(id));
  if (!missed.length) return [];
  const visible = new Set(((await scopeCertificates(trx('managed_certificates'), principal, permission).whereIn('id', missed).select('id')) as { id: string }[]).map((r) => r.id));
  return missed.map((id) => (visible.has(id)
    ? { certificate_id: id, code: 'not_matched', message: `Certificate ${id} does not meet the other criteria` }
    : { certificate_id: id, code: 'not_found', message: `Certificate ${id} not found` }));
}

async function auditBulk(k: KernelServices, trx: Knex.Transaction, actor: AuditActor, action: string, details: Record<string, unknown>) {
  await k.audit.append({ category: 'lifecycle', ...actor, action, resource_type: 'certificate', resource_id: '', details }, trx);
}

export interface BulkRenewResult {
  criteria: Criteria;
  matched_count: number;
  affected_count: number;
  jobs: { certificate_id: string; job_id: string; type: string; status: string }[];
  /** Certificates their clients renew (protocol-enrolled): the request is recorded for the client, no job. */
  client_renewed: string[];
  failed: BulkFailure[];
}

/**
 * Queues a renewal (an issuance for a never-issued certificate) for each selected
 * certificate, as POST /certificates/:id/renew would: revoked and archived ones are
 * reported, and one that already has an open Issuance/Renewal job is reported rather
 * than given a second. Jobs on approval-tier profiles wait for approval as usual.
 */
export async function bulkRenew(k: KernelServices, principal: Principal, body: Record<string, unknown>): Promise<BulkRenewResult> {
  const criteria = criteriaOf(body);
  const actor = actorOf(principal);
  const now = new Date();
  return k.db.knex.transaction(async (trx) => {
    const certs = await selectCertificates(trx, principal, 'cert.renew', criteria);
    const failed = await missedIds(trx, principal, 'cert.renew', criteria, certs);
    const open = await openIssuingJobs(trx, certs.map((c) => c.id));
    const renewable: CertificateRow[] = [];
    const byClient: CertificateRow[] = [];
    for (const c of certs) {
      const refusal = renewalRefusal(c, open.get(c.id));
      if (refusal) failed.push({ certificate_id: c.id, ...refusal });
      else if (renewedByClient(c)) byClient.push(c);
      else renewable.push(c);
    }
    const clientRenewed = (await askClientToRenew(k, trx, byClient, { actor, trigger: 'bulk', now })).map((r) => r.certificate_id);
    const jobs = await requestNewVersions(k, trx, renewable, { actor, trigger: 'bulk', now });
    await auditBulk(k, trx, actor, 'bulk_renewal_initiated', { criteria, matched: certs.length, affected: jobs.length + clientRenewed.length, failed: failed.map((f) => f.certificate_id) });
    failed.sort((a, b) => a.certificate_id.localeCompare(b.certificate_id));
    return {
      criteria,
      matched_count: certs.length,
      affected_count: jobs.length + clientRenewed.length,
      jobs: jobs.map((j) => ({ certificate_id: j.certificate_id!, job_id: j.id, type: j.type, status: j.status })).sort((a, b) => a.certificate_id.localeCompare(b.certificate_id)),
      client_renewed: clientRenewed.sort(),
      failed,
    };
  });
}

export interface BulkReassignResult {
  criteria: Criteria;
  new_owner_id: string | null;
  matched_count: number;
  affected_count: number;
  updated: string[];
  unchanged: string[];
  failed: BulkFailure[];
}

/** Gives the selected certificates a new owner (and so the owner's team and alert address). Archived ones are reported. */
export async function bulkReassign(k: KernelServices, principal: Principal, body: Record<string, unknown>): Promise<BulkReassignResult> {
  const criteria = criteriaOf(body);
  const newOwner = body.new_owner_id as string | null;
  const actor = actorOf(principal);
  const now = new Date();
  return k.db.knex.transaction(async (trx) => {
    await checkReferences(trx, { owner_id: newOwner });
    const certs = await selectCertificates(trx, principal, 'cert.edit', criteria);
    const failed = await missedIds(trx, principal, 'cert.edit', criteria, certs);
    const updated: CertificateRow[] = [];
    const unchanged: string[] = [];
    for (const c of certs) {
      if (c.status === 'Archived') failed.push({ certificate_id: c.id, code: 'invalid_state', message: `Certificate ${c.id} is archived and cannot be edited` });
      else if (c.owner_id === newOwner) unchanged.push(c.id);
      else updated.push(c);
    }
    if (updated.length) {
      await trx('managed_certificates').whereIn('id', updated.map((c) => c.id)).update({ owner_id: newOwner, updated_at: now });
      await k.audit.append(updated.map((c) => ({
        category: 'lifecycle' as const, ...actor, action: 'certificate_updated', resource_type: 'certificate', resource_id: c.id,
        details: { fields: ['owner_id'], changed: { owner_id: { from: c.owner_id, to: newOwner } }, trigger: 'bulk' },
      })), trx);
    }
    await auditBulk(k, trx, actor, 'bulk_reassignment', { criteria, new_owner_id: newOwner, matched: certs.length, affected: updated.length, failed: failed.map((f) => f.certificate_id) });
    failed.sort((a, b) => a.certificate_id.localeCompare(b.certificate_id));
    return { criteria, new_owner_id: newOwner, matched_count: certs.length, affected_count: updated.length, updated: updated.map((c) => c.id), unchanged, failed };
  });
}
