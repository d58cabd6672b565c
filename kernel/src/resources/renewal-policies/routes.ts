import type { ListSpec } from '../../http/list-query.js';
import type { JsonSchema, RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { booleanFilter, crudRoutes, TIME_FILTERS, TIMESTAMP_SORTS, type CrudSpec } from '../crud.js';

export const renewalPolicyProperties: Record<string, JsonSchema> = {
  name: { type: 'string', minLength: 1, maxLength: 100 },
  renewal_window_days: { type: 'integer', minimum: 1, maximum: 365, description: 'Renew this many days before expiry (default 30)' },
  alert_thresholds_days: {
    type: 'array', maxItems: 20, uniqueItems: true, items: { type: 'integer', minimum: 0, maximum: 365 },
    description: 'Days before expiry at which to alert (default [30, 14, 7, 0]); stored in descending order',
  },
  auto_renew: { type: 'boolean' },
  max_retries: { type: 'integer', minimum: 0, maximum: 100 },
  retry_interval_seconds: { type: 'integer', minimum: 60, maximum: 7 * 24 * 3600 },
  agent_group_id: { type: ['string', 'null'], minLength: 1, maxLength: 64 },
};

const FIELDS = ['id', 'name', 'renewal_window_days', 'alert_thresholds_days', 'auto_renew', 'max_retries', 'retry_interval_seconds',
  'agent_group_id', 'created_at', 'updated_at'] as const;

export const renewalPoliciesList: ListSpec = {
  sortable: { name: 'name', renewal_window_days: 'renewal_window_days', ...TIMESTAMP_SORTS },
  defaultSort: 'name',
  filters: {
    auto_renew: booleanFilter('auto_renew', 'Policies that do (true) or do not (false) renew automatically'),
    agent_group_id: { description: 'Policies scoped to this agent group', column: 'agent_group_id' },
  },
  timeFilters: TIME_FILTERS,
  fields: FIELDS,
};

export const renewalPolicySpec: CrudSpec = {
  kind: 'renewalPolicy',
  table: 'renewal_policies',
  basePath: '/api/v1/renewal-policies',
  tag: 'renewal-policies',
  noun: 'renewal_policy',
  permissions: { read: 'policy.read', create: 'policy.manage', update: 'policy.manage', delete: 'policy.manage' },
  properties: renewalPolicyProperties,
  required: ['name'],
  jsonColumns: ['alert_thresholds_days'],
  list: renewalPoliciesList,
  references: { agent_group_id: { table: 'agent_groups', noun: 'agent_group' } },
  // Descending order lets the scheduler walk thresholds from the earliest alert to the last.
  beforeWrite: (data) => (Array.isArray(data.alert_thresholds_days)
    ? { ...data, alert_thresholds_days: [...(data.alert_thresholds_days as number[])].sort((a, b) => b - a) }
    : data),
};

export function renewalPolicyRoutes(k: KernelServices): RouteDef[] {
  return crudRoutes(k, renewalPolicySpec);
}
