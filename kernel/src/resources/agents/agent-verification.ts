import type { Knex } from 'knex';
import type { JsonSchema } from '../../http/route.js';
import type { JobRow } from '../../jobs/job-states.js';
import type { VerificationReport } from './agent-wire.js';

const fingerprint: JsonSchema = { type: 'string', pattern: '^[0-9a-fA-F:]{64,95}$' };

/** A post-deployment TLS check as the agent reports it (alone, or inside a deployment result). */
export const verificationReportSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['success', 'failed', 'skipped'] },
    endpoint: { type: 'string', maxLength: 300 },
    expected_fingerprint_sha256: fingerprint,
    observed_fingerprint_sha256: fingerprint,
    error: { type: 'string', maxLength: 2000 },
  },
};

const normalise = (fp: string | undefined) => fp?.replace(/:/g, '').toLowerCase();

/**
 * The verification as recorded: the status is the server's, not the agent's word
 * alone. A "success" whose observed fingerprint is not the deployed version's is a
 * failure; fingerprints are stored as lowercase hex.
 */
export function settleVerification(report: VerificationReport, deployedFingerprint: string | null): VerificationReport {
  const observed = normalise(report.observed_fingerprint_sha256);
  const expected = deployedFingerprint ?? normalise(report.expected_fingerprint_sha256);
  const out: VerificationReport = { ...report, expected_fingerprint_sha256: expected, observed_fingerprint_sha256: observed };
  if (report.status === 'success' && observed && expected && observed !== expected) {
    return { ...out, status: 'failed', error: 'the endpoint serves a different certificate than the one deployed' };
  }
  return out;
}

/** The jobs columns a verification sets; `merge` also adds it to the job's result (where details live). */
export function verificationColumns(trx: Knex.Transaction, report: VerificationReport, opts: { merge?: boolean } = {}): Record<string, unknown> {
  return {
    verification_status: report.status,
    verification_error: report.status === 'failed' ? (report.error ?? 'verification failed').slice(0, 2000) : null,
    verified_at: report.status === 'skipped' ? null : trx.fn.now(),
    ...(opts.merge ? { result: trx.raw(`coalesce(result, '{}'::jsonb) || jsonb_build_object('verification', ?::jsonb)`, [JSON.stringify(report)]) } : {}),
  };
}

/** GET /api/v1/jobs/{id}/verification: the recorded check, `pending` until one arrives. */
export function verificationView(job: JobRow): Record<string, unknown> {
  const v = (job.result?.verification ?? {}) as Partial<VerificationReport>;
  return {
    job_id: job.id,
    status: job.verification_status ?? 'pending',
    error: job.verification_error ?? null,
    verified_at: job.verified_at ?? null,
    endpoint: v.endpoint ?? null,
    expected_fingerprint_sha256: v.expected_fingerprint_sha256 ?? null,
    observed_fingerprint_sha256: v.observed_fingerprint_sha256 ?? null,
  };
}
