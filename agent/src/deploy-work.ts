import crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { DeployRequest, DeployResult } from '@certctl/sdk';
import type { DeployResultRequest, DeployWorkItem, VerificationReport } from '@certctl/kernel';
import { describeCallError, TargetUnavailable, type AgentPluginHost, type TargetSession } from './agent-plugin-host.js';
import { sleep } from './backoff.js';
import { normalizeSha256 } from './config.js';
import { KeyStoreError, type KeyStore, type StoredKey } from './key-store.js';
import { verifyDeployment, verifyEndpointOf } from './tls-verify.js';

export interface DeployDeps {
  host: AgentPluginHost;
  keys: KeyStore;
  log: Logger;
  verifyDelayMs: number;
  verifyTimeoutMs: number;
  verifyWindowMs?: number;
  signal: AbortSignal;
}

const MIN_CALL_MS = 10_000;
const MAX_CALL_MS = 300_000;
/** Kept back from the lease to send the result. */
const REPORT_MARGIN_MS = 5_000;

/** What a deploy needs after the plugin call: the endpoint check (delay, window, probe) and the report. */
const afterCallMs = (deps: Pick<DeployDeps, 'verifyDelayMs' | 'verifyTimeoutMs' | 'verifyWindowMs'>) =>
  deps.verifyDelayMs + (deps.verifyWindowMs ?? 0) + deps.verifyTimeoutMs + REPORT_MARGIN_MS;

const leaseLeftMs = (item: DeployWorkItem): number => {
  const left = Date.parse(item.lease_expires_at) - Date.now();
  return Number.isFinite(left) ? left : MAX_CALL_MS + REPORT_MARGIN_MS;
};

/**
 * Whether the lease still leaves room for a whole deploy: a plugin call of at least
 * MIN_CALL_MS, then the verify and the report. A job whose lease is nearly out is left
 * alone (the server's reaper hands it out again) rather than deployed past its lease,
 * when the server may already have given it to the next attempt.
 */
export function leaseTooShort(item: DeployWorkItem, deps: Pick<DeployDeps, 'verifyDelayMs' | 'verifyTimeoutMs' | 'verifyWindowMs'>): boolean {
  return leaseLeftMs(item) < MIN_CALL_MS + afterCallMs(deps);
}

/** Time the deploy call may take: what the lease leaves after the verify and the report, at most MAX_CALL_MS. */
function callBudget(item: DeployWorkItem, deps: DeployDeps): number {
  return Math.min(MAX_CALL_MS, Math.max(1, leaseLeftMs(item) - afterCallMs(deps)));
}

const failed = (error: string, extra: Partial<DeployResultRequest> = {}): DeployResultRequest => ({ status: 'Failed', error: error.slice(0, 2000), ...extra });

function isDeployResult(v: unknown): v is DeployResult {
  const r = v as DeployResult | null;
  if (!r || typeof r !== 'object') return false;
  if (r.status === 'deployed') return typeof r.changed === 'boolean' && (r.snapshotId === undefined || typeof r.snapshotId === 'string');
  return r.status === 'failed' && typeof r.reason === 'string' && typeof r.rolledBack === 'boolean';
}

/**
 * One Deployment job: find (or store) the key, let the target plugin deploy,
 * probe the live endpoint when the target names one, and roll back through the
 * plugin when the endpoint does not serve the new certificate. Returns the outcome to
 * report (it never throws for a failed deploy), or null, touching nothing, when the
 * lease is too short to finish (leaseTooShort): the job is then not reported at all.
 */
export async function runDeployItem(item: DeployWorkItem, deps: DeployDeps): Promise<DeployResultRequest | null> {
  if (leaseTooShort(item, deps)) return null;
  const result = await deployAndVerify(item, deps);
  // Echoing the lease's attempt lets the server refuse a late answer to an older lease.
  return Number.isInteger(item.attempt) ? { ...result, attempt: item.attempt } : result;
}

async function deployAndVerify(item: DeployWorkItem, deps: DeployDeps): Promise<DeployResultRequest> {
  const log = deps.log.child({ job_id: item.job_id, certificate_id: item.certificate_id, target_id: item.target?.id });
  let fingerprint: string;
  try {
    const cert = new crypto.X509Certificate(item.certificate_pem);
    fingerprint = crypto.createHash('sha256').update(cert.raw).digest('hex');
  } catch {
    return failed('the deployment carries no parsable certificate');
  }
  if (normalizeSha256(item.fingerprint_sha256 ?? '') !== fingerprint) return failed('the certificate does not match the fingerprint the control plane sent');

  let key: StoredKey | null;
  try {
    key = item.key?.source === 'server'
      ? await deps.keys.storeServerKey(item.certificate_id, item.key.private_key_pem, item.certificate_pem)
      : await deps.keys.findKeyFor(item.certificate_id, item.certificate_pem);
  } catch (err) {
    return failed(err instanceof KeyStoreError ? err.message : `key store: ${(err as Error).message}`);
  }
  if (!key) return failed("this agent holds no private key for the certificate's public key (was the CSR made by another agent?)");

  let session: TargetSession;
  try {
    session = deps.host.open({ id: item.target.id, type: item.target.type, config: item.target.config ?? {} }, { keyPath: key.keyPath });
  } catch (err) {
    if (err instanceof TargetUnavailable) return failed(err.message);
    throw err;
  }
  const budget = callBudget(item, deps);
  try {
    const request: DeployRequest = { certificateId: item.certificate_id, certificatePem: item.certificate_pem, chainPem: item.chain_pem ?? [], keyPath: key.keyPath, fingerprintSha256: fingerprint };
    let result: unknown;
    try {
      result = await session.call<DeployResult>('deploy', request as never, budget);
    } catch (err) {
      return failed(`deploy: ${describeCallError(err)}`);
    }
    if (!isDeployResult(result)) return failed(`deploy: plugin ${session.pluginId} returned something that is not a DeployResult`);
    if (result.status === 'failed') {
      log.warn({ reason: result.reason, rolled_back: result.rolledBack }, 'target deploy failed');
      return failed(result.reason, { rolled_back: result.rolledBack, verification: { status: 'skipped' } });
    }

    const verification = await verifyIfAsked(item, fingerprint, deps);
    if (verification.status === 'failed') {
      // Putting the old files back matters more than the lease: the rollback gets at least MIN_CALL_MS.
      const rolledBack = await rollBack(session, result.snapshotId, Math.max(MIN_CALL_MS, leaseLeftMs(item) - REPORT_MARGIN_MS), log);
      log.warn({ verification, rolled_back: rolledBack }, 'the endpoint does not serve the deployed certificate');
      return failed(`post-deployment verification failed: ${verification.error ?? 'fingerprint mismatch'}`, { changed: result.changed, rolled_back: rolledBack, verification });
    }
    await deps.keys.markDeployed(item.certificate_id, key.keyId).catch((err: Error) => log.warn({ err: err.message }, 'could not record the deployed key'));
    log.info({ changed: result.changed, verification: verification.status }, 'certificate deployed');
    return { status: 'Completed', changed: result.changed, rolled_back: false, verification };
  } finally {
    await session.close();
  }
}

async function verifyIfAsked(item: DeployWorkItem, fingerprint: string, deps: DeployDeps): Promise<VerificationReport> {
  const ep = verifyEndpointOf(item.target.config ?? {});
  if (!ep) return { status: 'skipped' };
  if ('problem' in ep) return { status: 'failed', expected_fingerprint_sha256: fingerprint, error: ep.problem };
  // Give the server time to pick up the reload before asking what it serves.
  if (!(await sleep(deps.verifyDelayMs, deps.signal))) return { status: 'skipped', error: 'the agent is shutting down' };
  return verifyDeployment(ep, fingerprint, deps.verifyTimeoutMs, deps.verifyWindowMs);
}

async function rollBack(session: TargetSession, snapshotId: string | undefined, budget: number, log: Logger): Promise<boolean> {
  if (!snapshotId) {
    log.warn('the plugin returned no snapshot to roll back to');
    return false;
  }
  try {
    const r = await session.call<{ ok?: unknown; reason?: unknown }>('rollback', { snapshotId }, budget);
    if (r?.ok === true) return true;
    log.error({ reason: r?.reason }, 'rollback failed');
  } catch (err) {
    log.error({ err: describeCallError(err) }, 'rollback failed');
  }
  return false;
}
