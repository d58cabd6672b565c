import type { ListSpec } from '../../http/list-query.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { crudRoutes, TIME_FILTERS, TIMESTAMP_SORTS, type CrudSpec } from '../crud.js';

const FIELDS = ['id', 'name', 'email', 'team_id', 'created_at', 'updated_at'] as const;

export const ownersList: ListSpec = {
  sortable: { name: 'name', email: 'email', ...TIMESTAMP_SORTS },
  defaultSort: 'name',
  filters: {
    team_id: { description: 'Owners of these teams (comma-separated ids)', column: 'team_id' },
    email: { description: 'Exact email address', column: 'email' },
  },
  timeFilters: TIME_FILTERS,
  fields: FIELDS,
};

/** People or mailboxes that own certificates; notifications fall back to their email. */
export const ownerSpec: CrudSpec = {
  kind: 'owner',
  table: 'owners',
  basePath: '/api/v1/owners',
  tag: 'owners',
  noun: 'owner',
  permissions: { read: 'owner.read', create: 'owner.manage', update: 'owner.manage', delete: 'owner.manage' },
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    email: { type: 'string', format: 'email', maxLength: 320 },
    team_id: { type: ['string', 'null'], minLength: 1, maxLength: 64 },
  },
  required: ['name'],
  list: ownersList,
  references: { team_id: { table: 'teams', noun: 'team' } },
  referencedBy: [{ table: 'managed_certificates', column: 'owner_id', noun: 'certificate' }],
};

export function ownerRoutes(k: KernelServices): RouteDef[] {
  return crudRoutes(k, ownerSpec);
}
