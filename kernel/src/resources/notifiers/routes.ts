import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { instanceRoutes } from '../../plugins/instances/instance-routes.js';
import { NOTIFIER_ROUTING_COLUMNS, NOTIFIER_ROUTING_PROPERTIES, prepareRoutingColumns } from '../../notifications/notifier-routing-fields.js';

/** Notifiers: instances of notifier plugins (email, webhook, chat, ...). */
export function notifierRoutes(k: KernelServices): RouteDef[] {
  return instanceRoutes(k, {
    kind: 'notifier',
    idKind: 'notifier',
    table: 'notifiers',
    basePath: '/api/v1/notifiers',
    tag: 'notifiers',
    noun: 'notifier',
    permissions: { read: 'notifier.read', create: 'notifier.manage', update: 'notifier.manage', delete: 'notifier.manage' },
    // Which events reach this notifier (docs/notifications.md).
    extraProperties: NOTIFIER_ROUTING_PROPERTIES,
    extraColumns: NOTIFIER_ROUTING_COLUMNS,
    checkReferences: prepareRoutingColumns,
  });
}
