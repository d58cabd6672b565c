import type { Knex } from 'knex';
import type { Principal } from '../../auth/principal.js';
import { newId } from '../../db/ids.js';
import { appError } from '../../errors.js';
import type { JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { enqueueIssuingJobs, issuingJobState, openIssuingJobs } from '../../lifecycle/issuance-jobs.js';
import type { CertificateRow } from './certificate-model.js';
import { checkReferences, hasVersions, loadVisibleCertificate } from './certificate-store.js';
import { replaceTargets } from './certificate-targets.js';
import { normaliseSans } from './subject-names.js';
import { actorOf } from '../../audit/audit-log.js';
import { openIssuanceApprovals, sameSans } from '../../approvals/approval-requests.js';

export interface CertificateInput {
  id?: string;
  name?: string;
  common_name?: string;
  sans?: string[];
  environment?: string;
  owner_id?: string | null;
  issuer_id?: string;
  profile_id?: string | null;
  renewal_policy_id?: string | null;
  agent_id?: string | null;
  tags?: Record<string, string>;
  target_ids?: string[];
}

/** Fields that decide what gets issued: fixed once the certificate has left Pending. */
const ISSUANCE_FIELDS = ['common_name', 'issuer_id', 'profile_id'] as const;

/**
 * Fields an open issuing job (and its approval request) was created for: none of them
 * changes until that job ends, so what is issued is what was asked for and approved.
 */
const SUBJECT_FIELDS = ['common_name', 'sans', 'issuer_id', 'profile_id'] as const;

const jsonb = (v: unknown) => JSON.stringify(v);

/**
 * Creates a certificate in Pending and its Issuance job in one transaction: the
 * job waits for approval when the profile asks for it, else for the agent's CSR
 * (agent key generation with an agent assigned), else for a worker.
 */
export async function createCertificate(k: KernelServices, principal: Principal, input: CertificateInput): Promise<{ cert: CertificateRow; job: JobRow }> {
  principal.require('cert.create', { profile_id: input.profile_id ?? null, issuer_id: input.issuer_id ?? null });
  const sans = normaliseSans(input.sans ?? []);
  const now = new Date();
  return k.db.knex.transaction(async (trx) => {
    await checkReferences(trx, input);
    const id = input.id ?? newId('certificate');
    if (await trx('managed_certificates').where({ id }).first('id')) throw appError('CONFLICT', `Certificate ${id} already exists`);
    const [cert] = (await trx('managed_certificates').insert({
      id,
      name: input.name,
      common_name: input.common_name,
      sans: jsonb(sans),
      environment: input.environment ?? '',
      status: 'Pending',
      owner_id: input.owner_id ?? null,
      issuer_id: input.issuer_id ?? null,
      profile_id: input.profile_id ?? null,
      renewal_policy_id: input.renewal_policy_id ?? null,
      agent_id: input.agent_id ?? null,
      tags: jsonb(input.tags ?? {}),
      // Millisecond timestamps round-trip exactly through JS Dates (list cursors rely on it).
      created_at: now,
      updated_at: now,
    }).returning('*')) as CertificateRow[];
    if (input.target_ids?.length) await replaceTargets(trx, principal, id, input.target_ids);
    const actor = actorOf(principal);
    await k.audit.append({
      category: 'lifecycle', ...actor, action: 'certificate_created', resource_type: 'certificate', resource_id: id,
      details: { common_name: cert.common_name, issuer_id: cert.issuer_id, profile_id: cert.profile_id, target_ids: input.target_ids ?? [] },
    }, trx);
    const [job] = await enqueueIssuingJobs(k, trx, [cert], 'Issuance', { actor, trigger: 'created', now });
    return { cert, job };
  });
}

/**
 * Edits a certificate. Naming, ownership, policy, agent and tags may change at any
 * time; SANs whenever no issuing job is open (they apply from the next issuance);
 * issuer, profile and common name only while it is still Pending and no issuing job
 * is open, which for a Pending certificate means its first Issuance was cancelled or
 * failed. An archived certificate is read-only.
 */
export async function updateCertificate(k: KernelServices, principal: Principal, id: string, input: CertificateInput): Promise<CertificateRow> {
  const sans = input.sans === undefined ? undefined : normaliseSans(input.sans);
  const now = new Date();
  return k.db.knex.transaction(async (trx) => {
    const existing = await loadVisibleCertificate(trx, id, principal, ['cert.read', 'cert.edit'], { lock: true });
    principal.require('cert.edit', existing);
    if (existing.status === 'Archived') throw appError('INVALID_STATE', `Certificate ${id} is archived and cannot be edited`);
    const changedIssuance = ISSUANCE_FIELDS.filter((f) => input[f] !== undefined && input[f] !== existing[f]);
    if (changedIssuance.length && existing.status !== 'Pending') {
      throw appError('INVALID_STATE', `${changedIssuance.join(', ')} can only change while the certificate is Pending (it is ${existing.status})`);
    }
    const next = { profile_id: input.profile_id === undefined ? existing.profile_id : input.profile_id, issuer_id: input.issuer_id ?? existing.issuer_id };
    if (changedIssuance.length) principal.require('cert.edit', next);
    const changedSubject = SUBJECT_FIELDS.filter((f) => (f === 'sans'
      ? sans !== undefined && !sameSans(sans, existing.sans ?? [])
      : input[f] !== undefined && input[f] !== existing[f]));
    if (changedSubject.length) {
      // Else a job approved (or queued) for one set of names would issue another.
      const open = (await openIssuingJobs(trx, [id])).get(id);
      if (open) {
        throw appError('ISSUANCE_JOB_OPEN', `${changedSubject.join(', ')} cannot change while ${open.type} job ${open.id} is ${open.status}; ${open.status === 'Running' ? 'wait for it to finish' : `cancel the open job first (POST /api/v1/jobs/${open.id}/cancel)`}`);
      }
    }
    const refs = Object.fromEntries((['owner_id', 'issuer_id', 'profile_id', 'renewal_policy_id', 'agent_id'] as const)
      .filter((f) => input[f] !== undefined && input[f] !== existing[f]).map((f) => [f, input[f]]));
    const resolved = await checkReferences(trx, refs);

    const patch: Record<string, unknown> = {};
    for (const f of ['name', 'common_name', 'environment', 'owner_id', 'issuer_id', 'profile_id', 'renewal_policy_id', 'agent_id'] as const) {
      if (input[f] !== undefined) patch[f] = input[f];
    }
    if (sans !== undefined) patch.sans = jsonb(sans);
    if (input.tags !== undefined) patch.tags = jsonb(input.tags);
    const [cert] = (await trx('managed_certificates').where({ id }).update({ ...patch, updated_at: now }).returning('*')) as CertificateRow[];
    const actor = actorOf(principal);
    await k.audit.append({
      category: 'lifecycle', ...actor, action: 'certificate_updated', resource_type: 'certificate', resource_id: id,
      details: { fields: Object.keys(input), ...(changedIssuance.length ? { changed: Object.fromEntries(changedIssuance.map((f) => [f, { from: existing[f], to: cert[f] }])) } : {}) },
    }, trx);
    if ('profile_id' in refs || 'agent_id' in refs) {
      await rerouteWaitingJob(k, trx, cert, resolved.profile?.requires_approval ?? (cert.profile_id ? undefined : false), actor, now);
    }
    return cert;
  });
}

/**
 * A queued (not yet started, not held for approval) issuing job follows the
 * certificate's new agent: an agent assigned or removed changes who produces the
 * CSR. (A profile cannot change under an open job, see SUBJECT_FIELDS; were it to,
 * a profile that requires approval would hold the job here, never skip it.)
 */
async function rerouteWaitingJob(
  k: KernelServices,
  trx: Knex.Transaction,
  cert: CertificateRow,
  knownApproval: boolean | undefined,
  actor: { actor: string; actor_type: string },
  now: Date,
): Promise<void> {
  const job = (await openIssuingJobs(trx, [cert.id])).get(cert.id);
  if (!job || (job.status !== 'Pending' && job.status !== 'AwaitingCSR')) return;
  let requiresApproval = knownApproval;
  if (requiresApproval === undefined) {
    const p = (await trx('certificate_profiles').where({ id: cert.profile_id }).first('requires_approval')) as { requires_approval: boolean } | undefined;
    requiresApproval = Boolean(p?.requires_approval);
  }
  const state = issuingJobState(k.config, cert, requiresApproval, now);
  if (state.status === job.status && state.agent_id === job.agent_id) return;
  await trx('jobs').where({ id: job.id }).update({ ...state, updated_at: now });
  await k.audit.append({
    category: 'lifecycle', ...actor, action: 'job_rerouted', resource_type: 'job', resource_id: job.id,
    details: { certificate_id: cert.id, from: job.status, to: state.status, agent_id: state.agent_id ?? null },
  }, trx);
  // A job newly held for approval gets its approval request, as at creation.
  if (state.status === 'AwaitingApproval') await openIssuanceApprovals(trx, k.audit, [{ ...job, ...state } as JobRow], actor);
}

/** Deletes a certificate that was never issued; issued ones are archived instead, to keep their history. */
export async function deleteCertificate(k: KernelServices, principal: Principal, id: string): Promise<void> {
  await k.db.knex.transaction(async (trx) => {
    const cert = await loadVisibleCertificate(trx, id, principal, ['cert.read', 'cert.delete'], { lock: true });
    principal.require('cert.delete', cert);
    if (await hasVersions(trx, id)) {
      throw appError('INVALID_STATE', `Certificate ${id} has issued versions; archive it (POST /api/v1/certificates/${id}/archive) instead of deleting it`);
    }
    if (await trx('jobs').where({ certificate_id: id, status: 'Running' }).first('id')) {
      throw appError('INVALID_STATE', `Certificate ${id} has a running job; cancel or wait for it first`);
    }
    // Its jobs, target mappings and notifications go with it (ON DELETE CASCADE); the audit row names the jobs.
    const jobs = ((await trx('jobs').where({ certificate_id: id }).select('id')) as { id: string }[]).map((j) => j.id);
    await trx('managed_certificates').where({ id }).delete();
    await k.audit.append({
      category: 'lifecycle', ...actorOf(principal), action: 'certificate_deleted', resource_type: 'certificate', resource_id: id,
      details: { common_name: cert.common_name, status: cert.status, deleted_jobs: jobs },
    }, trx);
  });
}
