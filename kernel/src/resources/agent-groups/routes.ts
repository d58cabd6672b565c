import { appError } from '../../errors.js';
import { runList } from '../../http/list-query.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { serializeAgent } from '../agents/schemas.js';
import { crudRoutes, loadRow, type CrudSpec, type Row } from '../crud.js';
import { parseCidr, type GroupCriteria } from './group-matching.js';
import { resolveGroupMembers } from './membership.js';
import { groupProperties, groupsList, memberBody, membersList } from './schemas.js';
import { actorOf } from '../../audit/audit-log.js';
import { markAuditResource } from '../../http/route.js';

export const agentGroupSpec: CrudSpec = {
  kind: 'agentGroup',
  table: 'agent_groups',
  basePath: '/api/v1/agent-groups',
  tag: 'agent-groups',
  noun: 'agent_group',
  permissions: { read: 'agent.read', create: 'agent.manage', update: 'agent.manage', delete: 'agent.manage' },
  properties: groupProperties,
  required: ['name'],
  list: groupsList,
  beforeWrite: (data) => {
    const cidr = data.match_ip_cidr;
    if (typeof cidr === 'string' && !parseCidr(cidr)) {
      throw appError('VALIDATION_FAILED', `match_ip_cidr "${cidr}" is not a CIDR block (e.g. 10.0.0.0/8, fd00::/8)`, { details: [{ path: '/match_ip_cidr', message: 'must be an IPv4 or IPv6 CIDR block' }] });
    }
    return data;
  },
};

/** Agent groups: CRUD plus the resolved membership and the manual include/exclude lists. */
export function agentGroupRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const base = agentGroupSpec.basePath;
  const loadGroup = (id: string, db: typeof knex = knex) => loadRow(db, 'agent_groups', 'agent_group', id) as Promise<Row & GroupCriteria>;

  return [
    ...crudRoutes(k, agentGroupSpec),
    {
      method: 'GET', path: `${base}/:id/members`, access: 'agent.read', tag: 'agent-groups', list: membersList,
      summary: 'The agents in the group: criteria matches plus manual includes, minus manual excludes',
      handler: async (ctx, { params, list }) => {
        markAuditResource(ctx, 'agent_group', params.id);
        const members = await resolveGroupMembers(knex, await loadGroup(params.id));
        return runList(() => knex('agents').whereRaw('id = any(?)', [[...members.keys()]]), membersList, list!,
          (row: Row) => ({ ...serializeAgent(row), membership: members.get(row.id) }));
      },
    },
    {
      method: 'POST', path: `${base}/:id/members`, access: 'agent.manage', tag: 'agent-groups', body: memberBody, response: { status: 201 },
      summary: 'Include an agent in the group, or exclude it, whatever the criteria say',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'agent_group', params.id);
        return knex.transaction(async (trx) => {
          await loadRow(trx, 'agent_groups', 'agent_group', params.id, { lock: true });
          if (!(await trx('agents').where({ id: body.agent_id }).first('id'))) {
            throw appError('REFERENCE_NOT_FOUND', `agent ${body.agent_id} does not exist`, { details: [{ path: '/agent_id', message: 'agent not found' }] });
          }
          const [row] = (await trx('agent_group_members')
            .insert({ agent_group_id: params.id, agent_id: body.agent_id, membership_type: body.membership_type })
            .onConflict(['agent_group_id', 'agent_id']).merge(['membership_type'])
            .returning('*')) as Record<string, unknown>[];
          await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: 'agent_group_member_set', resource_type: 'agent_group', resource_id: params.id, details: { agent_id: body.agent_id, membership_type: body.membership_type } }, trx);
          return row;
        });
      },
    },
    {
      method: 'DELETE', path: `${base}/:id/members/:agent_id`, access: 'agent.manage', tag: 'agent-groups',
      summary: 'Remove a manual include or exclude (criteria membership is unaffected)',
      handler: async (ctx, { params, principal }) => {
        markAuditResource(ctx, 'agent_group', params.id);
        await knex.transaction(async (trx) => {
          await loadRow(trx, 'agent_groups', 'agent_group', params.id, { lock: true });
          const removed = (await trx('agent_group_members').where({ agent_group_id: params.id, agent_id: params.agent_id }).delete().returning('membership_type')) as { membership_type: string }[];
          if (removed.length === 0) throw appError('NOT_FOUND', `agent ${params.agent_id} has no manual membership in agent_group ${params.id}`);
          await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: 'agent_group_member_removed', resource_type: 'agent_group', resource_id: params.id, details: { agent_id: params.agent_id, membership_type: removed[0].membership_type } }, trx);
        });
      },
    },
  ];
}
