import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { appError } from '../../errors.js';
import { instanceRoutes } from '../../plugins/instances/instance-routes.js';

/** Deployment targets: instances of target plugins, each optionally served by one agent. */
export function targetRoutes(k: KernelServices): RouteDef[] {
  return instanceRoutes(k, {
    kind: 'target',
    idKind: 'target',
    table: 'targets',
    basePath: '/api/v1/targets',
    tag: 'targets',
    noun: 'target',
    permissions: { read: 'target.read', create: 'target.manage', update: 'target.manage', delete: 'target.manage' },
    extraProperties: { agent_id: { type: ['string', 'null'], minLength: 1, maxLength: 64, description: 'The agent that deploys to this target' } },
    extraColumns: ['agent_id', 'source', 'test_status', 'tested_at'],
    extraFilters: { agent_id: { description: 'Agent id', column: 'agent_id' } },
    async checkReferences(data, trx) {
      const agentId = data.agent_id;
      if (typeof agentId === 'string' && !(await trx('agents').where({ id: agentId }).first('id'))) {
        throw appError('REFERENCE_NOT_FOUND', `agent ${agentId} not found`);
      }
    },
  });
}
