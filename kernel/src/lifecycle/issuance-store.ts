import type { Knex } from 'knex';
import type { AuditActor, AuditInput } from '../audit/audit-log.js';
import { rowsOf } from '../db/raw-rows.js';
import type { KernelServices } from '../kernel-services.js';
import { recordNotifications, type NotificationEvent } from '../notifications/notification-events.js';
import { NOTIFIER_ROUTE_COLUMNS, type CertificateRouting, type NotifierRoute } from '../notifications/notification-routing.js';
import { refused } from './issuance-failure.js';
import type { IssuedLeaf } from './issuance-leaf.js';
import { recordPolicyOutcomes, type PolicyEvaluation } from './policy-engine.js';
import { newId, newIdSql } from '../db/ids.js';

/** One issued certificate to store (see storeIssued). */
export interface IssuedRecord {
  certificateId: string;
  commonName: string;
  type: 'Issuance' | 'Renewal';
  /** The job that produced it; null for a protocol enrolment without a job. */
  jobId: string | null;
  csrPem: string;
  leaf: IssuedLeaf;
  /** A server-made key kept for this job: it becomes the version's key. */
  serverKey: boolean;
  issuerId: string | null;
  profileId: string | null;
  /** Policies checked against the issued certificate (violations recorded, passes resolve). */
  policy: PolicyEvaluation | null;
  /** Extra audit details (ttl_capped, trigger, ...). */
  details?: Record<string, unknown>;
}

export interface StoredIssuance {
  certificateId: string;
  versionId: string;
  deploymentJobIds: string[];
  policyViolationIds: string[];
}

/**
 * Stores issued certificates in the caller's transaction with a fixed number of
 * statements whatever their number (one record per certificate): one statement
 * writes the versions, the certificates' new state (Active, serial, fingerprint,
 * validity, key; last_renewal_at on renewals), the server keys' owner and one
 * Deployment job per mapped, enabled target routed to the target's agent (the
 * agent leases them through GET /work; the kernel never runs them), cancelling
 * the older Pending deployments to those targets (superseded). A certificate
 * revoked or archived meanwhile gets nothing: the call throws a non-retryable
 * IssuanceError naming it (nothing of the batch is kept). Then the
 * policy outcomes, the RenewalSuccess (and PolicyViolation) notifications, and
 * one audit append, last, so the audit chain's lock is held for the shortest
 * time. The certificate rows are locked in id order, so two batches (two replicas)
 * never wait on each other in a cycle. The job handler, the protocol servers and
 * the bench all store through here (issuance-batch.ts groups concurrent stores).
 */
export async function storeIssued(
  k: Pick<KernelServices, 'db' | 'log' | 'audit' | 'config'>,
  trx: Knex.Transaction,
  records: readonly IssuedRecord[],
  opts: { actor: AuditActor; now?: Date },
): Promise<StoredIssuance[]> {
  if (!records.length) return [];
  const now = opts.now ?? new Date();
  const versionIds = records.map(() => newId('version'));
  const col = <T>(f: (r: IssuedRecord) => T) => records.map(f);
  const certIds = col((r) => r.certificateId);
  const rows = rowsOf<{ kind: 'cert' | 'notifiers' | 'job' | 'superseded' | 'closed'; id: string; a: string | null; b: string | null; c: string | null }>(await trx.raw(
    `WITH input AS (
       SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[], ?::text[], ?::int[], ?::text[], ?::text[], ?::boolean[], ?::boolean[])
         AS v(vid, cert, job, serial, fp, nb, na, alg, size, pem, csr, renewal, server_key)
     ), prev AS (
       -- By the array, not by joining input: a join is planned as a scan of the whole table once the plan is generic.
       SELECT c.id, c.status FROM managed_certificates c WHERE c.id = ANY(?::text[]) ORDER BY c.id FOR UPDATE
     ), ok AS (
       -- A certificate revoked or archived while its issuer worked gets nothing (storeIssued then throws, refusing the record).
       SELECT v.*, prev.status AS from_status FROM input v JOIN prev ON prev.id = v.cert WHERE prev.status NOT IN ('Revoked', 'Archived')
     ), versions AS (
       INSERT INTO certificate_versions (id, certificate_id, job_id, serial_number, fingerprint_sha256, not_before, not_after, key_algorithm, key_size, pem_chain, csr_pem, created_at)
       SELECT vid, cert, job, serial, fp, nb, na, alg, size, pem, csr, ?::timestamptz FROM ok
     ), keys AS (
       UPDATE certificate_keys k SET version_id = v.vid FROM ok v WHERE v.server_key AND k.job_id = v.job
     ), updated AS (
       UPDATE managed_certificates c SET status = 'Active', serial_number = v.serial, fingerprint_sha256 = v.fp,
              not_before = v.nb, expires_at = v.na, key_algorithm = v.alg, key_size = v.size,
              last_renewal_at = CASE WHEN v.renewal THEN ?::timestamptz ELSE c.last_renewal_at END, updated_at = ?::timestamptz
         FROM ok v WHERE c.id = v.cert AND c.id = ANY(?::text[])
       RETURNING c.id, v.from_status, c.renewal_policy_id, c.owner_id
     ), deployments AS (
       INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id, payload, scheduled_at, max_attempts, requested_by, created_at, updated_at)
       SELECT ${newIdSql('job')}, 'Deployment', 'Pending', v.cert, t.id, t.agent_id,
              jsonb_build_object('version_id', v.vid), now(), ?::int, ?::text, ?::timestamptz, ?::timestamptz
         FROM ok v JOIN certificate_target_mappings m ON m.certificate_id = v.cert JOIN targets t ON t.id = m.target_id AND t.enabled
       RETURNING id, certificate_id, target_id, agent_id
     ), superseded AS (
       -- An older deployment of the certificate to the same target that has not started would deploy the old version: cancelled.
       -- (A Running one finishes; the agent's work poll cancels it if it comes back for a retry.)
       UPDATE jobs j SET status = 'Cancelled', last_error = 'superseded by version ' || v.vid, completed_at = ?::timestamptz, updated_at = ?::timestamptz
         FROM ok v WHERE j.certificate_id = v.cert AND j.type = 'Deployment' AND j.status = 'Pending'
          AND j.target_id IN (SELECT d.target_id FROM deployments d WHERE d.certificate_id = v.cert)
       RETURNING j.id, j.certificate_id, v.vid, j.payload->>'version_id' AS old_version
     )
     -- With each certificate, what routes its notifications (renewal policy, owner's email).
     SELECT 'cert' AS kind, u.id, u.from_status AS a, u.renewal_policy_id AS b, o.email AS c FROM updated u LEFT JOIN owners o ON o.id = u.owner_id
     UNION ALL
     -- The enabled notifiers, read here rather than by one more statement (notification-events.ts).
     SELECT 'notifiers', '', (SELECT coalesce(json_agg(n ORDER BY n.id), '[]'::json)::text
       FROM (SELECT ${NOTIFIER_ROUTE_COLUMNS.join(', ')} FROM notifiers WHERE enabled) n), NULL, NULL
     UNION ALL
     SELECT 'job', id, certificate_id, target_id, agent_id FROM deployments
     UNION ALL
     SELECT 'superseded', id, certificate_id, vid, old_version FROM superseded
     UNION ALL
     SELECT 'closed', id, status, NULL, NULL FROM prev WHERE status IN ('Revoked', 'Archived')`,
    [versionIds, certIds, col((r) => r.jobId), col((r) => r.leaf.serialNumber), col((r) => r.leaf.fingerprintSha256),
      col((r) => r.leaf.notBefore.toISOString()), col((r) => r.leaf.notAfter.toISOString()), col((r) => r.leaf.keyAlgorithm), col((r) => r.leaf.keySize),
      col((r) => r.leaf.pemChain), col((r) => r.csrPem), col((r) => r.type === 'Renewal'), col((r) => r.serverKey && r.jobId !== null),
      certIds, now, now, now, certIds, k.config.jobs.maxAttempts, opts.actor.actor, now, now, now, now] as unknown as Knex.RawBinding[],
  // Named: parsed once per connection (the text never varies; only the arrays do).
  ).options({ name: 'certctl_store_issued' }));
  const certRows = rows.filter((r) => r.kind === 'cert');
  const fromStatus = new Map(certRows.map((r) => [r.id, r.a]));
  const routing = {
    notifiers: JSON.parse(rows.find((r) => r.kind === 'notifiers')?.a ?? '[]') as NotifierRoute[],
    certificates: new Map<string, CertificateRouting>(certRows.map((r) => [r.id, { renewal_policy_id: r.b, owner_email: r.c }])),
  };
  const refusedRecords = refusals(records, fromStatus, rows.filter((r) => r.kind === 'closed'));
  // Nothing was written for these; the error rolls back the rest (the batch then stores record by record, so only they fail).
  if (refusedRecords.length) throw refused(refusedRecords.join('; '));
  const jobs = rows.filter((r) => r.kind === 'job').map((r) => ({ id: r.id, certificate_id: r.a!, target_id: r.b!, agent_id: r.c }))
    .sort((x, y) => (x.target_id < y.target_id ? -1 : 1));
  const superseded = rows.filter((r) => r.kind === 'superseded').map((r) => ({ id: r.id, certificate_id: r.a!, by: r.b!, version_id: r.c }));
  const jobsOf = (certificateId: string) => jobs.filter((j) => j.certificate_id === certificateId);

  const policy = await recordPolicyOutcomes(trx, records.filter((r) => r.policy).map((r) => ({ certificateId: r.certificateId, evaluation: r.policy!, commonName: r.commonName })), { now, resolvePassed: true });
  const events: NotificationEvent[] = [...policy.events];
  records.forEach((r, i) => events.push({
    type: 'RenewalSuccess',
    certificate_id: r.certificateId,
    severity: 'info',
    subject: `Certificate ${r.commonName} ${r.type === 'Renewal' ? 'renewed' : 'issued'}`,
    message: `Certificate ${r.certificateId} (${r.commonName}) was ${r.type === 'Renewal' ? 'renewed' : 'issued'}: serial ${r.leaf.serialNumber}, valid until ${r.leaf.notAfter.toISOString()}.`,
    dedupe_key: `issued:${versionIds[i]}`,
  }));
  await recordNotifications(k, trx, events, { now, routing });

  const audit: AuditInput[] = records.map((r, i) => ({
    category: 'lifecycle', ...opts.actor,
    action: r.type === 'Renewal' ? 'certificate_renewed' : 'certificate_issued', resource_type: 'certificate', resource_id: r.certificateId,
    details: {
      version_id: versionIds[i], job_id: r.jobId, from: fromStatus.get(r.certificateId) ?? null, to: 'Active',
      serial_number: r.leaf.serialNumber, fingerprint_sha256: r.leaf.fingerprintSha256,
      not_before: r.leaf.notBefore.toISOString(), not_after: r.leaf.notAfter.toISOString(),
      key_algorithm: r.leaf.keyAlgorithm, key_size: r.leaf.keySize, issuer_id: r.issuerId, profile_id: r.profileId,
      key_source: r.serverKey ? 'server' : 'csr', deployment_job_ids: jobsOf(r.certificateId).map((j) => j.id),
      policy_violation_ids: policy.opened.get(r.certificateId) ?? [], ...r.details,
    },
  }));
  const versionOf = new Map(records.map((r, i) => [r.certificateId, versionIds[i]]));
  for (const j of jobs) {
    audit.push({
      category: 'lifecycle', ...opts.actor, action: 'job_created', resource_type: 'job', resource_id: j.id,
      details: { type: 'Deployment', status: 'Pending', certificate_id: j.certificate_id, target_id: j.target_id, agent_id: j.agent_id, version_id: versionOf.get(j.certificate_id) },
    });
  }
  for (const j of superseded) {
    audit.push({
      category: 'lifecycle', ...opts.actor, action: 'job_cancelled', resource_type: 'job', resource_id: j.id,
      details: { type: 'Deployment', reason: 'superseded', certificate_id: j.certificate_id, version_id: j.version_id, superseded_by_version: j.by },
    });
  }
  await k.audit.append(audit, trx);

  return records.map((r, i) => ({
    certificateId: r.certificateId, versionId: versionIds[i],
    deploymentJobIds: jobsOf(r.certificateId).map((j) => j.id), policyViolationIds: policy.opened.get(r.certificateId) ?? [],
  }));
}

/** Why records cannot be stored: their certificate was revoked or archived meanwhile, or is gone. */
function refusals(records: readonly IssuedRecord[], stored: Map<string, unknown>, closed: { id: string; a: string | null }[]): string[] {
  const closedStatus = new Map(closed.map((c) => [c.id, c.a]));
  return records.filter((r) => !stored.has(r.certificateId)).map((r) => {
    const status = closedStatus.get(r.certificateId);
    return status
      ? `certificate ${r.certificateId} was ${status.toLowerCase()} while it was being ${r.type === 'Renewal' ? 'renewed' : 'issued'}; the issued certificate (serial ${r.leaf.serialNumber}) is not stored or deployed`
      : `certificate ${r.certificateId} no longer exists; the issued certificate is not stored`;
  });
}
