import type { ListSpec } from '../../http/list-query.js';
import type { JsonSchema } from '../../http/route.js';
import { TIME_FILTERS, type Row } from '../crud.js';

export const AGENT_STATUSES = ['Online', 'Offline', 'Degraded', 'Disabled'] as const;

export const AGENT_FIELDS = ['id', 'name', 'status', 'hostname', 'os', 'platform', 'architecture', 'ip_address', 'version',
  'capabilities', 'api_key_id', 'last_heartbeat_at', 'registered_at', 'created_at', 'updated_at'] as const;

export const agentsList: ListSpec = {
  sortable: { name: 'name', created_at: 'created_at', updated_at: 'updated_at', last_heartbeat_at: 'last_heartbeat_at' },
  defaultSort: 'name',
  nullable: ['last_heartbeat_at'],
  filters: {
    status: { description: 'Agent status', column: 'status', enum: AGENT_STATUSES },
    os: { description: 'Operating system as reported (comma-separated values)', column: 'os' },
    architecture: { description: 'CPU architecture as reported (comma-separated values)', column: 'architecture' },
  },
  timeFilters: TIME_FILTERS,
  fields: AGENT_FIELDS,
};

/** What an agent reports about its host; shared by registration and heartbeat. */
export const hostFacts: Record<string, JsonSchema> = {
  hostname: { type: 'string', maxLength: 253 },
  os: { type: 'string', maxLength: 64 },
  platform: { type: 'string', maxLength: 128 },
  architecture: { type: 'string', maxLength: 64 },
  ip_address: { type: 'string', anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }, { const: '' }], description: 'IPv4 or IPv6 address, or empty' },
  version: { type: 'string', maxLength: 64 },
};

export const agentName: JsonSchema = { type: 'string', minLength: 1, maxLength: 200 };

export const heartbeatBody: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...hostFacts,
    capabilities: { type: 'array', maxItems: 100, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 64 } },
  },
};

/** The API never hands out more than the row; api_key_id names the key (never its secret). */
export const serializeAgent = (row: Row): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const f of AGENT_FIELDS) out[f] = row[f] ?? (f === 'capabilities' ? [] : null);
  return out;
};
