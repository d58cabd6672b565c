import type { Knex } from 'knex';
import { NOTIFICATION_TYPES } from '@certctl/sdk';
import { appError } from '../errors.js';
import type { JsonSchema } from '../http/route.js';
import { SEVERITIES } from './notification-routing.js';

/** The routing columns of a notifier (migration 010), as API fields. Empty lists mean "all". */
export const NOTIFIER_ROUTING_PROPERTIES: Record<string, JsonSchema> = {
  event_types: {
    type: 'array', uniqueItems: true, items: { type: 'string', enum: [...NOTIFICATION_TYPES] },
    description: 'Notification types this notifier receives; empty: all',
  },
  min_severity: { type: 'string', enum: [...SEVERITIES], description: 'Lowest severity this notifier receives (info < warning < critical)' },
  renewal_policy_ids: {
    type: 'array', uniqueItems: true, maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 64 },
    description: 'Only events about certificates under these renewal policies; empty: all',
  },
  recipients: {
    type: 'array', uniqueItems: true, maxItems: 100, items: { type: 'string', format: 'email', maxLength: 320 },
    description: "Addresses to send to (e-mail); empty: the certificate owner's e-mail",
  },
};

export const NOTIFIER_ROUTING_COLUMNS = Object.keys(NOTIFIER_ROUTING_PROPERTIES);
const JSON_COLUMNS = ['event_types', 'renewal_policy_ids', 'recipients'];

/**
 * Checks the renewal policies named exist, and encodes the list columns as
 * JSON text for their jsonb columns (the driver would send a JS array as a
 * PostgreSQL array). Runs inside the write transaction, on the columns being written.
 */
export async function prepareRoutingColumns(data: Record<string, unknown>, trx: Knex.Transaction): Promise<void> {
  const policies = data.renewal_policy_ids;
  if (Array.isArray(policies) && policies.length) {
    const found = new Set(((await trx('renewal_policies').whereIn('id', policies as string[]).select('id')) as { id: string }[]).map((r) => r.id));
    const missing = (policies as string[]).filter((p) => !found.has(p));
    if (missing.length) throw appError('REFERENCE_NOT_FOUND', `renewal_policy_ids: renewal policy ${missing.join(', ')} not found`);
  }
  for (const c of JSON_COLUMNS) if (Array.isArray(data[c])) data[c] = JSON.stringify(data[c]);
}
