import type { ListSpec } from '../../http/list-query.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { crudRoutes, TIME_FILTERS, TIMESTAMP_SORTS, type CrudSpec } from '../crud.js';

const FIELDS = ['id', 'name', 'description', 'created_at', 'updated_at'] as const;

export const teamsList: ListSpec = {
  sortable: { name: 'name', ...TIMESTAMP_SORTS },
  defaultSort: 'name',
  filters: { name: { description: 'Exact team name', column: 'name' } },
  timeFilters: TIME_FILTERS,
  fields: FIELDS,
};

/** Teams group owners; a team cannot go while owners still belong to it. */
export const teamSpec: CrudSpec = {
  kind: 'team',
  table: 'teams',
  basePath: '/api/v1/teams',
  tag: 'teams',
  noun: 'team',
  permissions: { read: 'owner.read', create: 'owner.manage', update: 'owner.manage', delete: 'owner.manage' },
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    description: { type: 'string', maxLength: 1000 },
  },
  required: ['name'],
  list: teamsList,
  referencedBy: [{ table: 'owners', column: 'team_id', noun: 'owner' }],
};

export function teamRoutes(k: KernelServices): RouteDef[] {
  return crudRoutes(k, teamSpec);
}
