import type { ListSpec } from '../../http/list-query.js';
import type { JsonSchema } from '../../http/route.js';
import { agentsList } from '../agents/schemas.js';
import { booleanFilter, TIME_FILTERS, TIMESTAMP_SORTS } from '../crud.js';

export const GROUP_FIELDS = ['id', 'name', 'description', 'match_os', 'match_architecture', 'match_ip_cidr', 'match_version',
  'enabled', 'created_at', 'updated_at'] as const;

export const groupsList: ListSpec = {
  sortable: { name: 'name', ...TIMESTAMP_SORTS },
  defaultSort: 'name',
  filters: { enabled: booleanFilter('enabled', 'Only enabled (true) or disabled (false) groups') },
  timeFilters: TIME_FILTERS,
  fields: GROUP_FIELDS,
};

const criterion = (description: string, extra: JsonSchema = {}): JsonSchema =>
  ({ type: ['string', 'null'], minLength: 1, maxLength: 64, description, ...extra });

export const groupProperties: Record<string, JsonSchema> = {
  name: { type: 'string', minLength: 1, maxLength: 100 },
  description: { type: 'string', maxLength: 1000 },
  match_os: criterion('Operating system, compared case-insensitively (linux, darwin, windows)'),
  match_architecture: criterion('CPU architecture, compared case-insensitively (amd64, arm64)'),
  match_ip_cidr: criterion('IPv4 or IPv6 CIDR block the agent address must fall in'),
  match_version: criterion('Agent version: exact, or a prefix ending in * (1.4.*)', { pattern: '^[0-9A-Za-z][0-9A-Za-z.+_-]*\\*?$' }),
  enabled: { type: 'boolean' },
};

export const memberBody: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['agent_id'],
  properties: {
    agent_id: { type: 'string', minLength: 1, maxLength: 64 },
    membership_type: { type: 'string', enum: ['include', 'exclude'], default: 'include' },
  },
};

/** Resolved members are agents, plus how each one got in. */
export const membersList: ListSpec = {
  ...agentsList,
  fields: [...agentsList.fields, 'membership'],
};
