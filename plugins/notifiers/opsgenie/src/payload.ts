import type { NotifyRequest } from '@certctl/sdk';
import { alertKeyOf, notificationFacts, truncate } from '@certctl/sdk/notify';

export type Priority = 'P1' | 'P2' | 'P3' | 'P4' | 'P5';
const BY_SEVERITY: Record<NotifyRequest['severity'], Priority> = { critical: 'P1', warning: 'P3', info: 'P5' };

/**
 * A create-alert request body. The alias is the certificate's, so OpsGenie
 * de-duplicates repeated warnings about one certificate into one open alert
 * (and a success event can close it). Field limits are the API's: message 130
 * characters, alias 512, description 15000.
 */
export function createAlert(req: NotifyRequest, o: { priority?: Priority; tags: string[] }): Record<string, unknown> {
  return {
    message: truncate(req.subject, 130),
    alias: truncate(alertKeyOf(req), 512),
    description: truncate(req.message, 15000),
    priority: o.priority ?? BY_SEVERITY[req.severity],
    source: 'certctl',
    tags: o.tags,
    entity: req.certificate?.commonName,
    details: { notification_id: req.notificationId, ...Object.fromEntries(notificationFacts(req).map((f) => [f.label.toLowerCase().replace(/ /g, '_'), f.value])) },
  };
}

/** Path and body of the close-alert request for the certificate's alias. */
export function closeAlert(req: NotifyRequest): { path: string; body: Record<string, unknown> } {
  return {
    path: `/v2/alerts/${encodeURIComponent(alertKeyOf(req))}/close?identifierType=alias`,
    body: { source: 'certctl', note: truncate(`${req.subject}: ${req.message}`, 25000) },
  };
}
