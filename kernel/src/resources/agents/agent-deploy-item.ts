import type { Knex } from 'knex';
import type { JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { openConfig } from '../../plugins/instances/instance-config.js';
import { pemCertificates } from '../../crypto/der.js';
import { serverKeyForVersion } from '../../lifecycle/issuance-server-key.js';
import type { DeployWorkItem } from './agent-wire.js';

interface VersionRow {
  id: string;
  serial_number: string;
  fingerprint_sha256: string;
  pem_chain: string;
}

interface TargetRow {
  id: string;
  name: string;
  type: string;
  agent_id: string | null;
  enabled: boolean;
  config: unknown;
  encrypted_config: string | null;
}

/** A leased Deployment job that cannot be handed out as it is; it fails for good with this reason. */
export class UndeliverableDeployment extends Error {}

/**
 * Builds the work item for a Deployment job leased to `agentId`: the version's
 * certificate and chain, the target with its config (secrets decrypted here, for
 * this agent only, and never stored or logged), and where the key is. Throws
 * UndeliverableDeployment when the job's data no longer hold together (version
 * gone, target moved to another agent or disabled, config undecryptable): retrying
 * would not change that.
 */
export async function buildDeployItem(k: Pick<KernelServices, 'cipher' | 'db'>, trx: Knex.Transaction, job: JobRow, agentId: string): Promise<DeployWorkItem> {
  const versionId = typeof job.payload?.version_id === 'string' ? job.payload.version_id : null;
  if (!versionId || !job.certificate_id) throw new UndeliverableDeployment('the deployment job names no certificate version');
  if (!job.target_id) throw new UndeliverableDeployment('the deployment job names no target (was it deleted?)');
  const version = (await trx('certificate_versions').where({ id: versionId, certificate_id: job.certificate_id })
    .first('id', 'serial_number', 'fingerprint_sha256', 'pem_chain')) as VersionRow | undefined;
  if (!version) throw new UndeliverableDeployment(`certificate version ${versionId} does not exist`);
  const [leaf, ...chain] = pemCertificates(version.pem_chain);
  if (!leaf) throw new UndeliverableDeployment(`certificate version ${versionId} holds no PEM certificate`);
  const target = (await trx('targets').where({ id: job.target_id })
    .first('id', 'name', 'type', 'agent_id', 'enabled', 'config', 'encrypted_config')) as TargetRow | undefined;
  if (!target) throw new UndeliverableDeployment(`target ${job.target_id} does not exist`);
  // The target may have been handed to another agent since the job was made: its secrets are not ours then.
  if (target.agent_id !== agentId) throw new UndeliverableDeployment(`target ${target.id} is no longer served by agent ${agentId}`);
  if (!target.enabled) throw new UndeliverableDeployment(`target ${target.id} is disabled`);
  let config: Record<string, unknown>;
  try {
    config = openConfig(k.cipher, target).full;
  } catch {
    throw new UndeliverableDeployment(`the stored config of target ${target.id} cannot be decrypted`);
  }
  const serverKey = await serverKeyForVersion(k, version.id, trx);
  return {
    kind: 'deploy',
    job_id: job.id,
    certificate_id: job.certificate_id,
    version_id: version.id,
    serial_number: version.serial_number,
    fingerprint_sha256: version.fingerprint_sha256,
    certificate_pem: leaf,
    chain_pem: chain,
    key: serverKey === null ? { source: 'agent' } : { source: 'server', private_key_pem: serverKey },
    target: { id: target.id, name: target.name, type: target.type, config },
    lease_expires_at: new Date(job.lease_expires_at!).toISOString(),
    attempt: job.attempts,
  };
}
