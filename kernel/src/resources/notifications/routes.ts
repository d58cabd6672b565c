import type { ListSpec } from '../../http/list-query.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { NOTIFICATION_TYPES } from '@certctl/sdk';
import { crudRoutes, isSetFilter, loadRow, TIME_FILTERS, type CrudSpec, type Row } from '../crud.js';
import { actorOf } from '../../audit/audit-log.js';
import { markAuditResource } from '../../http/route.js';
import { SEVERITIES } from '../../notifications/notification-routing.js';
export const NOTIFICATION_STATUSES = ['pending', 'sent', 'failed'] as const;

const FIELDS = ['id', 'type', 'severity', 'certificate_id', 'notifier_id', 'channel', 'recipient', 'subject', 'message', 'status', 'error',
  'attempts', 'next_attempt_at', 'sent_at', 'read_at', 'created_at', 'updated_at'] as const;

export const notificationsList: ListSpec = {
  sortable: { created_at: 'created_at', updated_at: 'updated_at' },
  defaultSort: '-created_at',
  filters: {
    type: { description: 'Notification type', column: 'type', enum: NOTIFICATION_TYPES },
    status: { description: 'Delivery status', column: 'status', enum: NOTIFICATION_STATUSES },
    certificate_id: { description: 'Notifications about this certificate', column: 'certificate_id' },
    notifier_id: { description: 'Notifications sent through this notifier', column: 'notifier_id' },
    channel: { description: 'Channel (the notifier plugin id, e.g. email, slack)', column: 'channel' },
    severity: { description: 'Severity', column: 'severity', enum: SEVERITIES },
    read: isSetFilter('read_at', 'Read (true) or unread (false)'),
  },
  timeFilters: TIME_FILTERS,
  fields: FIELDS,
};

/** dedupe_key, event_key and the lease are the dispatcher's bookkeeping, not part of the API. */
const serializeNotification = (row: Row): Record<string, unknown> => Object.fromEntries(FIELDS.map((f) => [f, row[f] ?? null]));

/**
 * Notifications are written by the system (scheduler, lifecycle); through the
 * API they are only read and marked read.
 */
export const notificationSpec: CrudSpec = {
  kind: 'notification',
  table: 'notifications',
  basePath: '/api/v1/notifications',
  tag: 'notifications',
  noun: 'notification',
  permissions: { read: 'notification.read', create: 'notification.manage', update: 'notification.manage', delete: 'notification.manage' },
  operations: ['list', 'get'],
  properties: {},
  required: [],
  list: notificationsList,
  serialize: serializeNotification,
};

export function notificationRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const base = notificationSpec.basePath;
  return [
    ...crudRoutes(k, notificationSpec),
    {
      method: 'POST', path: `${base}/read-all`, access: 'notification.manage', tag: 'notifications',
      summary: 'Mark every unread notification read',
      handler: async (_ctx, { principal }) => knex.transaction(async (trx) => {
        const count = Number(await trx('notifications').whereNull('read_at').update({ read_at: trx.fn.now(), updated_at: trx.fn.now() }));
        if (count > 0) {
          await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: 'notifications_read_all', resource_type: 'notification', details: { count } }, trx);
        }
        return { updated: count };
      }),
    },
    {
      method: 'POST', path: `${base}/:id/read`, access: 'notification.manage', tag: 'notifications',
      summary: 'Mark one notification read (again: no change, the first read time stays)',
      handler: async (ctx, { params, principal }) => {
        markAuditResource(ctx, 'notification', params.id);
        const row = await knex.transaction(async (trx) => {
          const existing = await loadRow(trx, 'notifications', 'notification', params.id, { lock: true });
          if (existing.read_at) return existing;
          const [updated] = (await trx('notifications').where({ id: params.id }).update({ read_at: trx.fn.now(), updated_at: trx.fn.now() }).returning('*')) as Row[];
          await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action: 'notification_read', resource_type: 'notification', resource_id: params.id }, trx);
          return updated;
        });
        return serializeNotification(row);
      },
    },
  ];
}
