import type { NotificationType } from '@certctl/sdk';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** A notifier instance's routing columns (migration 010). Empty lists mean "all". */
/** The notifier columns routing reads (NotifierRoute): the issuance store reads them in its own statement. */
export const NOTIFIER_ROUTE_COLUMNS = ['id', 'type', 'event_types', 'min_severity', 'renewal_policy_ids', 'recipients'] as const;

export interface NotifierRoute {
  id: string;
  /** The notifier plugin id (email, webhook, slack, ...): the row's channel. */
  type: string;
  event_types: unknown;
  min_severity: string;
  renewal_policy_ids: unknown;
  recipients: unknown;
}

/** What routing needs to know about the certificate an event concerns. */
export interface CertificateRouting {
  renewal_policy_id: string | null;
  owner_email: string | null;
}

export interface Route {
  notifierId: string | null;
  channel: string;
  recipients: string[];
  dedupeKey: string | null;
}

/** The channel of an event no notifier routes: it is addressed to the owner, by e-mail, and kept for the dashboard. */
export const UNROUTED_CHANNEL = 'email';

/** A jsonb list of strings (parsed, or as text); anything else is empty. */
export const stringList = (v: unknown): string[] => {
  const parsed = typeof v === 'string' ? (() => { try { return JSON.parse(v) as unknown; } catch { return []; } })() : v;
  return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string' && x.length > 0) : [];
};

export const severityRank = (s: string): number => Math.max(0, SEVERITIES.indexOf(s as Severity));

/** Whether a notifier instance wants an event of this type and severity about this certificate. */
export function notifierWants(n: NotifierRoute, event: { type: NotificationType; severity: Severity }, cert: CertificateRouting | null): boolean {
  const types = stringList(n.event_types);
  if (types.length && !types.includes(event.type)) return false;
  if (severityRank(event.severity) < severityRank(n.min_severity)) return false;
  const policies = stringList(n.renewal_policy_ids);
  // A policy filter narrows to certificates under those policies; events about no certificate do not match it.
  if (policies.length && !(cert?.renewal_policy_id && policies.includes(cert.renewal_policy_id))) return false;
  return true;
}

/**
 * The routes of one event:
 * - one per enabled notifier instance that wants it (notifierWants), addressed
 *   to the instance's explicit recipients, or, when it has none, to the
 *   certificate owner's e-mail (chat and paging channels get the addresses as
 *   context; the e-mail channel sends to them);
 * - when no instance wants it, one unrouted row addressed to the owner, so the
 *   event is still recorded (and deduplicated) and the dashboard shows that
 *   nobody was told.
 * The dedupe key is per route: the event key for the unrouted row, the event
 * key and the notifier id for a routed one, so the same event is sent at most
 * once per channel.
 */
export function routeEvent(event: { type: NotificationType; severity: Severity; dedupe_key?: string }, cert: CertificateRouting | null, notifiers: readonly NotifierRoute[]): Route[] {
  const owner = cert?.owner_email?.trim() ? [cert.owner_email.trim()] : [];
  const key = event.dedupe_key ?? null;
  const routes = notifiers.filter((n) => notifierWants(n, event, cert)).map((n): Route => {
    const explicit = stringList(n.recipients);
    return { notifierId: n.id, channel: n.type, recipients: explicit.length ? explicit : owner, dedupeKey: key === null ? null : `${key}#${n.id}` };
  });
  if (routes.length) return routes;
  return [{ notifierId: null, channel: UNROUTED_CHANNEL, recipients: owner, dedupeKey: key }];
}
