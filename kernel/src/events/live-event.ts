import type { AuditRecord } from '../audit/chain.js';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';

/**
 * One change pushed to dashboards. Events are small: a client that cares
 * refetches the resource (the REST API stays the source of truth), so an event
 * never carries data its receiver could not read.
 */
export interface LiveEvent {
  /** Audit sequence number: monotonic, lets a client notice gaps. */
  seq: number;
  /** resource_type of the audit row: job, certificate, agent, approval, ... */
  topic: string;
  action: string;
  resource_id: string;
  actor: string;
  category: string;
  occurred_at: string;
  /** Only the scoping and state hints from the audit details, never secrets or free text. */
  hints: Record<string, string | null>;
}

const HINT_KEYS = ['status', 'to', 'from', 'type', 'profile_id', 'issuer_id', 'certificate_id', 'job_id', 'agent_id'] as const;

/** API-call rows are left out: a dashboard's own refetches would otherwise feed back into its stream. */
export function eventFromAudit(row: AuditRecord): LiveEvent | null {
  if (row.category === 'api') return null;
  const hints: Record<string, string | null> = {};
  const details = (row.details ?? {}) as Record<string, unknown>;
  for (const k of HINT_KEYS) {
    const v = details[k];
    if (typeof v === 'string' && v.length <= 128) hints[k] = v;
  }
  return {
    seq: Number(row.seq),
    topic: row.resource_type || row.category,
    action: row.action,
    resource_id: row.resource_id,
    actor: row.actor,
    category: row.category,
    occurred_at: new Date(row.occurred_at).toISOString(),
    hints,
  };
}

/** The permission that lets a caller read the resource an event names. */
const READ_PERMISSION: Record<string, Permission> = {
  job: 'job.read',
  approval: 'job.read',
  certificate: 'cert.read',
  agent: 'agent.read',
  agent_group: 'agent.read',
  issuer: 'issuer.read',
  certificate_authority: 'issuer.read',
  target: 'target.read',
  notifier: 'notifier.read',
  notification: 'notification.read',
  plugin: 'plugin.read',
  profile: 'profile.read',
  policy: 'policy.read',
  renewal_policy: 'policy.read',
  owner: 'owner.read',
  team: 'owner.read',
  discovered_certificate: 'discovery.read',
  api_key: 'auth.key.list',
  role: 'auth.role.list',
};

/**
 * Whether a principal may see an event: the audit reader sees every lifecycle
 * row anyway; otherwise the read permission of the resource, honouring
 * profile/issuer scopes through the hints the event carries.
 */
export function mayReceive(principal: Principal, event: LiveEvent): boolean {
  if (principal.hasGlobal('audit.read')) return true;
  const permission = READ_PERMISSION[event.topic];
  if (!permission) return false;
  return principal.can(permission, { profile_id: event.hints.profile_id ?? null, issuer_id: event.hints.issuer_id ?? null });
}
