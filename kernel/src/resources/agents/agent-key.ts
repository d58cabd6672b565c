import type { Knex } from 'knex';
import type { AuditLog } from '../../audit/audit-log.js';
import { generateApiKey } from '../../auth/api-keys.js';
import type { Principal } from '../../auth/principal.js';
import { newId } from '../../db/ids.js';
import { appError } from '../../errors.js';
import { actorOf, type AuditActor } from '../../audit/audit-log.js';

export interface AgentKey {
  id: string;
  key: string;
  key_prefix: string;
  name: string;
}

const AGENT_ROLE = 'role-agent';

/**
 * Mints an agent API key inside the caller's transaction, so the agent row and
 * its key commit together. Same key material and rows as IdentityService.createKey
 * (actor_type agent, the built-in agent role), audited as the same auth events.
 * The agent role only carries agent.operate, which any key creator may hand out.
 * `by` is the operator's key, or the registration actor when the agent registered itself.
 */
export async function mintAgentKey(trx: Knex.Transaction, audit: AuditLog, by: AuditActor, agentId: string): Promise<AgentKey> {
  const { key, hash, prefix } = generateApiKey();
  const id = newId('apiKey');
  const name = `agent ${agentId}`;
  await trx('api_keys').insert({ id, name, description: `Key of agent ${agentId}`, key_hash: hash, key_prefix: prefix, actor_type: 'agent', created_by: by.actor });
  await trx('api_key_roles').insert({ id: newId('grant'), api_key_id: id, role_id: AGENT_ROLE, scope_type: 'global', scope_id: '', granted_by: by.actor });
  await audit.append([
    { category: 'auth', ...by, action: 'api_key_created', resource_type: 'api_key', resource_id: id, details: { name, agent_id: agentId, expires_at: null } },
    { category: 'auth', ...by, action: 'role_assigned', resource_type: 'api_key', resource_id: id, details: { role_id: AGENT_ROLE, scope_type: 'global', scope_id: '' } },
  ], trx);
  return { id, key, key_prefix: prefix, name };
}

/**
 * Inserts an agent row (409 when the id is taken), with its own freshly minted key
 * when `withKey`, and appends `action` (agent_created, agent_registered), all in
 * `trx`: the agent, its key and their audit events commit together or not at all.
 */
export async function createAgent(
  trx: Knex.Transaction, audit: AuditLog, by: AuditActor, fields: Record<string, unknown> & { id: string },
  opts: { withKey: boolean; action: string; details: Record<string, unknown> },
): Promise<{ row: Record<string, unknown> & { id: string }; key: AgentKey | null }> {
  if (await trx('agents').where({ id: fields.id }).first('id')) throw appError('CONFLICT', `agent ${fields.id} already exists`);
  const key = opts.withKey ? await mintAgentKey(trx, audit, by, fields.id) : null;
  const [row] = (await trx('agents').insert({ ...fields, api_key_id: key?.id ?? null }).returning('*')) as (Record<string, unknown> & { id: string })[];
  await audit.append({ category: 'lifecycle', ...by, action: opts.action, resource_type: 'agent', resource_id: fields.id, details: { ...opts.details, api_key_id: key?.id ?? null } }, trx);
  return { row, key };
}

/** Revokes the agent key bound to a deleted agent, so it cannot outlive the agent. */
export async function revokeAgentKey(trx: Knex.Transaction, audit: AuditLog, by: Principal, keyId: string, agentId: string): Promise<void> {
  const n = await trx('api_keys').where({ id: keyId, actor_type: 'agent' }).whereNull('revoked_at').update({ revoked_at: trx.fn.now(), updated_at: trx.fn.now() });
  if (n > 0) {
    await audit.append({ category: 'auth', ...actorOf(by), action: 'api_key_revoked', resource_type: 'api_key', resource_id: keyId, details: { reason: 'agent_deleted', agent_id: agentId } }, trx);
  }
}
