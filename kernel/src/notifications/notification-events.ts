import type { Knex } from 'knex';
import type { NotificationType } from '@certctl/sdk';
import { newId } from '../db/ids.js';
import { rowsOf } from '../db/raw-rows.js';
import type { KernelServices } from '../kernel-services.js';
import { NOTIFIER_ROUTE_COLUMNS, routeEvent, type CertificateRouting, type NotifierRoute, type Severity } from './notification-routing.js';

export type NotificationSeverity = Severity;

/** A lifecycle event worth telling someone about. */
export interface NotificationEvent {
  type: NotificationType;
  certificate_id: string | null;
  severity: NotificationSeverity;
  subject: string;
  message: string;
  /** Same key, same event: recording it again adds nothing (per channel). */
  dedupe_key?: string;
}

const NOTIFICATION_COLUMNS = ['id', 'type', 'severity', 'certificate_id', 'notifier_id', 'channel', 'recipient', 'subject', 'message', 'event_key', 'dedupe_key'] as const;
/** Rows as arrays (14 bind parameters for any number of rows); pending, stamped with the given time or the transaction's. */
const INSERT_NOTIFICATIONS = `INSERT INTO notifications (${NOTIFICATION_COLUMNS.join(', ')}, status, created_at, updated_at)
  SELECT ${NOTIFICATION_COLUMNS.join(', ')}, 'pending', coalesce(?::timestamptz, now()), coalesce(?::timestamptz, now())
    FROM unnest(${NOTIFICATION_COLUMNS.map(() => '?::text[]').join(', ')}) AS r(${NOTIFICATION_COLUMNS.join(', ')})
  ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`;

export interface RecordOptions {
  /** Written to created_at/updated_at; the database clock when absent. */
  now?: Date;
  /**
   * The enabled notifiers (by id) and the certificates' routing, when the caller read them
   * in this transaction already (the issuance store does, in its one statement); a
   * certificate missing from the map is still looked up.
   */
  routing?: { notifiers: NotifierRoute[]; certificates: ReadonlyMap<string, CertificateRouting> };
}

/**
 * Records one event in the caller's transaction: routes it to the notifier
 * instances that want it and inserts one pending notifications row per route
 * (see notification-routing.ts). The dispatch loop sends them later, so the
 * caller's transaction never waits on a mail server or a webhook.
 */
export async function recordNotification(k: Pick<KernelServices, 'log'>, trx: Knex.Transaction, event: NotificationEvent, opts: RecordOptions = {}): Promise<void> {
  await recordNotifications(k, trx, [event], opts);
}

/**
 * Records many events with a few statements (the enabled notifiers, the
 * certificates' owners and policies when not given, one insert),
 * however many events there are. Returns the number of rows inserted; rows whose dedupe key
 * already exists are skipped silently.
 */
export async function recordNotifications(k: Pick<KernelServices, 'log'>, trx: Knex.Transaction, events: readonly NotificationEvent[], opts: RecordOptions = {}): Promise<number> {
  if (!events.length) return 0;
  const notifiers = opts.routing?.notifiers ?? ((await trx('notifiers').where({ enabled: true }).orderBy('id')
    .select(...NOTIFIER_ROUTE_COLUMNS)) as NotifierRoute[]);
  const certs = new Map<string, CertificateRouting>(opts.routing?.certificates ?? []);
  const certIds = [...new Set(events.map((e) => e.certificate_id).filter((id): id is string => Boolean(id) && !certs.has(id!)))];
  if (certIds.length) {
    const found = (await trx('managed_certificates as c').leftJoin('owners as o', 'o.id', 'c.owner_id').whereIn('c.id', certIds)
      .select('c.id', 'c.renewal_policy_id', 'o.email as owner_email')) as (CertificateRouting & { id: string })[];
    for (const c of found) certs.set(c.id, c);
  }
  const rows = events.flatMap((event) => routeEvent(event, event.certificate_id ? certs.get(event.certificate_id) ?? null : null, notifiers).map((route) => [
    newId('notification'), event.type, event.severity, event.certificate_id ?? null, route.notifierId, route.channel, route.recipients.join(', '),
    event.subject, event.message, event.dedupe_key ?? null, route.dedupeKey,
  ]));
  if (!rows.length) return 0;
  // One named statement whatever the number of rows (arrays, not a VALUES list): parsed once per connection.
  const columns = NOTIFICATION_COLUMNS.map((_, i) => rows.map((r) => r[i]));
  const done = rowsOf<{ id: string }>(await trx.raw(INSERT_NOTIFICATIONS, [opts.now ?? null, opts.now ?? null, ...columns] as unknown as Knex.RawBinding[]).options({ name: 'certctl_notifications_insert' }));
  const inserted = done.length;
  if (inserted) k.log.debug({ events: events.length, rows: inserted }, 'notifications recorded');
  return inserted;
}
