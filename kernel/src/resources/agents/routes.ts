import { ID_PATTERN, newId } from '../../db/ids.js';
import { appError } from '../../errors.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { crudRoutes, toDbRow, type CrudSpec } from '../crud.js';
import { createAgent, revokeAgentKey } from './agent-key.js';
import { loadOwnAgent, recordSignOfLife } from './agent-presence.js';
import { agentName, agentsList, heartbeatBody, hostFacts, serializeAgent } from './schemas.js';
import type { Knex } from 'knex';
import { actorOf } from '../../audit/audit-log.js';
import type { Principal } from '../../auth/principal.js';
import { settleCancelledRenewals } from '../../lifecycle/cancelled-renewal.js';
import { ISSUING_JOB_TYPES } from '../../lifecycle/issuance-jobs.js';
import { markAuditResource } from '../../http/route.js';

/** List, get, rename and delete come from the CRUD factory; create and heartbeat are agent-specific. */
export function agentSpec(k: KernelServices): CrudSpec {
  return {
    kind: 'agent',
    table: 'agents',
    basePath: '/api/v1/agents',
    tag: 'agents',
    noun: 'agent',
    permissions: { read: 'agent.read', create: 'agent.manage', update: 'agent.manage', delete: 'agent.manage' },
    operations: ['list', 'get', 'update', 'delete'],
    properties: { name: agentName },
    required: ['name'],
    jsonColumns: ['capabilities'],
    list: agentsList,
    serialize: serializeAgent,
    // Only targets hold on to an agent; certificates, jobs and group memberships
    // let go of a deleted agent by themselves (SET NULL / CASCADE in the schema).
    referencedBy: [{ table: 'targets', column: 'agent_id', noun: 'target' }],
    beforeDelete: async (row, { trx, principal }) => {
      if (typeof row.api_key_id === 'string') await revokeAgentKey(trx, k.audit, principal, row.api_key_id, row.id);
      await cancelCsrWaits(k, trx, principal, row.id as string);
    },
  };
}

/**
 * Issuance and Renewal jobs waiting for this agent's CSR: once the agent is gone
 * nobody will send one (the FK would only clear jobs.agent_id, leaving the job open
 * forever and every renew refused with 409). They are cancelled in the delete's
 * transaction, audited, and a certificate left RenewalInProgress settles back to the
 * status its expiry gives it, as with any cancelled renewal.
 */
async function cancelCsrWaits(k: KernelServices, trx: Knex.Transaction, principal: Principal, agentId: string): Promise<void> {
  const waiting = (await trx('jobs').where({ agent_id: agentId, status: 'AwaitingCSR' }).whereIn('type', ISSUING_JOB_TYPES)
    .orderBy('id').forUpdate().select('id')) as { id: string }[];
  if (!waiting.length) return;
  const actor = actorOf(principal);
  const renewed: string[] = [];
  for (const { id } of waiting) {
    const res = await k.jobs.cancel(id, { actor, reason: `agent ${agentId} was deleted before it sent the CSR`, trx });
    if (res.ok && res.job.type === 'Renewal' && res.job.certificate_id) renewed.push(res.job.certificate_id);
  }
  await settleCancelledRenewals(trx, k.audit, { now: new Date(), certificateIds: [...new Set(renewed)], actor });
}

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    id: { type: 'string', pattern: ID_PATTERN, description: 'Optional readable id; generated when omitted' },
    name: agentName,
    ...hostFacts,
    create_key: { type: 'boolean', description: 'Also mint an agent API key bound to this agent (needs auth.key.create); returned once' },
  },
};

export function agentRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const spec = agentSpec(k);

  return [
    ...crudRoutes(k, spec),
    {
      method: 'POST', path: spec.basePath, access: 'agent.manage', tag: 'agents', body: createBody, response: { status: 201 },
      summary: 'Register an agent record, optionally with its own API key (shown once)',
      handler: async (ctx, { body, principal }) => {
        const { create_key: createKey, ...fields } = body as Record<string, unknown> & { create_key?: boolean };
        if (createKey && !principal.hasGlobal('auth.key.create')) throw appError('FORBIDDEN', 'create_key needs the auth.key.create permission');
        const id = (fields.id as string | undefined) ?? newId('agent');
        const { row, key } = await knex.transaction((trx) => createAgent(trx, k.audit, actorOf(principal), { ...toDbRow(spec, fields), id },
          { withKey: Boolean(createKey), action: 'agent_created', details: { fields: Object.keys(body) } }));
        markAuditResource(ctx, 'agent', id);
        const out = serializeAgent(row);
        return key ? { ...out, api_key: { ...key, note: 'Store this key now: it is not shown again.' } } : out;
      },
    },
    {
      method: 'POST', path: `${spec.basePath}/:id/heartbeat`, access: 'agent.operate', tag: 'agents', body: heartbeatBody,
      summary: 'An agent reports that it is alive, with its host facts; only that agent\'s own key may call it',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'agent', params.id);
        const row = await knex.transaction(async (trx) => {
          const agent = await loadOwnAgent(trx, principal, params.id, { lock: true });
          return recordSignOfLife(k, trx, agent, principal, toDbRow(spec, body));
        });
        return serializeAgent(row);
      },
    },
  ];
}
