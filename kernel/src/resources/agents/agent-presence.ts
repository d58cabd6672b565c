import type { Knex } from 'knex';
import { actorOf } from '../../audit/audit-log.js';
import type { Principal } from '../../auth/principal.js';
import { appError } from '../../errors.js';
import type { KernelServices } from '../../kernel-services.js';
import type { Row } from '../crud.js';

type Db = Knex | Knex.Transaction;

/**
 * The agent row when the caller's key is that agent's own key. Every agent-protocol
 * route runs this first: a missing agent and someone else's agent get the same 403,
 * so a key cannot probe for agent ids.
 */
export async function loadOwnAgent(db: Db, principal: Principal, agentId: string, opts: { lock?: boolean } = {}): Promise<Row> {
  const q = db('agents').where({ id: agentId }).first();
  const agent = (await (opts.lock ? q.forUpdate() : q)) as Row | undefined;
  if (!agent || !principal.keyId || agent.api_key_id !== principal.keyId) throw appError('FORBIDDEN', `This key does not belong to agent ${agentId}`);
  return agent;
}

/**
 * A heartbeat or a work poll: the agent is alive. Stamps last_heartbeat_at (plus any
 * host facts, already in column form) and brings an Offline or Degraded agent back
 * Online; a Disabled agent stays Disabled. A status change is audited in `trx`.
 * `agent` must have been read FOR UPDATE in `trx`.
 */
export async function recordSignOfLife(k: Pick<KernelServices, 'audit'>, trx: Knex.Transaction, agent: Row, principal: Principal, facts: Record<string, unknown> = {}): Promise<Row> {
  const status = agent.status === 'Disabled' ? 'Disabled' : 'Online';
  const [updated] = (await trx('agents').where({ id: agent.id })
    .update({ ...facts, status, last_heartbeat_at: trx.fn.now(), updated_at: trx.fn.now() })
    .returning('*')) as Row[];
  if (agent.status !== status) {
    await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: 'agent_status_changed', resource_type: 'agent', resource_id: agent.id, details: { from: agent.status, to: status } }, trx);
  }
  return updated;
}
