import type { NotifyRequest } from '@certctl/sdk';
import { alertKeyOf, notificationFacts, RESOLVING_TYPES, truncate } from '@certctl/sdk/notify';

export interface PagerDutyOptions {
  routingKey: string;
  source: string;
  severity?: 'critical' | 'error' | 'warning' | 'info';
  resolveOnSuccess: boolean;
  nowMs: number;
}

/**
 * An Events API v2 event. Problems trigger an alert whose dedup_key is the
 * certificate's, so repeated warnings about one certificate land on one
 * incident; a RenewalSuccess or DeploymentSuccess resolves it (resolve events
 * carry only routing_key, event_action and dedup_key, as the API documents).
 */
export function pagerDutyEvent(req: NotifyRequest, o: PagerDutyOptions): Record<string, unknown> {
  const resolving = RESOLVING_TYPES.has(req.type) && o.resolveOnSuccess;
  const dedupKey = resolving || !RESOLVING_TYPES.has(req.type) ? alertKeyOf(req) : `certctl-${req.notificationId}`;
  if (resolving) return { routing_key: o.routingKey, event_action: 'resolve', dedup_key: dedupKey };
  return {
    routing_key: o.routingKey,
    event_action: 'trigger',
    dedup_key: dedupKey,
    client: 'certctl',
    payload: {
      summary: truncate(req.subject, 1024),
      source: o.source,
      severity: o.severity ?? req.severity,
      timestamp: new Date(o.nowMs).toISOString(),
      component: req.certificate?.commonName,
      class: req.type,
      custom_details: {
        message: req.message,
        notification_id: req.notificationId,
        ...Object.fromEntries(notificationFacts(req).map((f) => [f.label.toLowerCase().replace(/ /g, '_'), f.value])),
      },
    },
  };
}
