/**
 * The permission catalogue. Names follow `<area>.<verb>`; `scopes` says which
 * grant scopes can carry the permission (a grant on one profile or one issuer).
 */
export type ScopeType = 'global' | 'profile' | 'issuer';

interface PermissionInfo {
  description: string;
  scopes: readonly ScopeType[];
}

const G = ['global'] as const;
const CERT_SCOPES = ['global', 'profile', 'issuer'] as const;

export const PERMISSIONS = {
  'cert.read': { description: 'List and view certificates, versions and deployments', scopes: CERT_SCOPES },
  'cert.create': { description: 'Create managed certificates', scopes: CERT_SCOPES },
  'cert.edit': { description: 'Edit certificates and their target mappings', scopes: CERT_SCOPES },
  'cert.delete': { description: 'Archive and delete certificates', scopes: CERT_SCOPES },
  'cert.renew': { description: 'Trigger renewal', scopes: CERT_SCOPES },
  'cert.revoke': { description: 'Revoke certificates, single and bulk', scopes: CERT_SCOPES },
  'cert.export': { description: 'Export certificates (PEM, PKCS#12; never private keys)', scopes: CERT_SCOPES },
  'issuer.read': { description: 'View issuers (secrets are never returned)', scopes: ['global', 'issuer'] },
  'issuer.create': { description: 'Create issuers', scopes: G },
  'issuer.edit': { description: 'Edit, enable, disable and test issuers', scopes: ['global', 'issuer'] },
  'issuer.delete': { description: 'Delete issuers', scopes: ['global', 'issuer'] },
  'ca.manage': { description: 'Create, activate and retire the CAs of an issuer (CA hierarchy); admin only', scopes: ['global', 'issuer'] },
  'target.read': { description: 'View deployment targets', scopes: G },
  'target.manage': { description: 'Create, edit and delete deployment targets', scopes: G },
  'notifier.read': { description: 'View notifiers', scopes: G },
  'notifier.manage': { description: 'Create, edit and delete notifiers', scopes: G },
  'agent.read': { description: 'View agents, fleet and agent groups', scopes: G },
  'agent.manage': { description: 'Create, edit and delete agents and agent groups', scopes: G },
  'agent.operate': { description: 'Act as an agent: heartbeat, poll work, submit CSRs and results', scopes: G },
  'discovery.read': { description: 'View certificates agents discovered on disk, and scan history', scopes: G },
  'discovery.manage': { description: 'Triage discovered certificates: claim (link to a managed certificate) or dismiss', scopes: G },
  'profile.read': { description: 'View certificate profiles', scopes: ['global', 'profile'] },
  'profile.manage': { description: 'Create, edit and delete certificate profiles', scopes: ['global', 'profile'] },
  'policy.read': { description: 'View policies, violations and renewal policies', scopes: G },
  'policy.manage': { description: 'Create, edit and delete policies and renewal policies', scopes: G },
  'owner.read': { description: 'View owners and teams', scopes: G },
  'owner.manage': { description: 'Create, edit and delete owners and teams', scopes: G },
  'job.read': { description: 'View jobs', scopes: CERT_SCOPES },
  'job.cancel': { description: 'Cancel jobs', scopes: CERT_SCOPES },
  'job.approve': { description: 'Approve or reject jobs and approval requests', scopes: CERT_SCOPES },
  'notification.read': { description: 'View notifications', scopes: G },
  'notification.manage': { description: 'Mark notifications read, retry them', scopes: G },
  'audit.read': { description: 'Read the audit trail and its chain verification', scopes: G },
  'audit.export': { description: 'Export the audit trail (CSV, JSON)', scopes: G },
  'auth.role.list': { description: 'List roles and their permissions', scopes: G },
  'auth.role.create': { description: 'Create roles', scopes: G },
  'auth.role.edit': { description: 'Edit roles and their permissions', scopes: G },
  'auth.role.delete': { description: 'Delete custom roles', scopes: G },
  'auth.role.assign': { description: 'Grant and revoke roles on API keys', scopes: G },
  'auth.key.list': { description: 'List API keys (never their secret)', scopes: G },
  'auth.key.create': { description: 'Create API keys', scopes: G },
  'auth.key.revoke': { description: 'Revoke API keys', scopes: G },
  'plugin.read': { description: 'View installed plugins and their schemas', scopes: G },
  'plugin.manage': { description: 'Install, enable, disable, upgrade and remove plugins', scopes: G },
  'system.read': { description: 'View metrics, statistics and scheduler state', scopes: G },
} as const satisfies Record<string, PermissionInfo>;

export type Permission = keyof typeof PERMISSIONS;
export const ALL_PERMISSIONS = Object.keys(PERMISSIONS) as Permission[];

export const isPermission = (p: string): p is Permission => Object.hasOwn(PERMISSIONS, p);

const reads = ALL_PERMISSIONS.filter((p) => p.endsWith('.read') && !p.startsWith('audit.'));
const operatorSet = ALL_PERMISSIONS.filter(
  (p) => !p.startsWith('auth.') && p !== 'audit.export' && p !== 'plugin.manage' && p !== 'agent.operate' && p !== 'ca.manage',
);

/** The seven built-in roles. Their permission sets are re-applied on every start. */
export const DEFAULT_ROLES: { id: string; name: string; description: string; permissions: Permission[] }[] = [
  { id: 'role-admin', name: 'admin', description: 'Everything, including identity and plugins', permissions: ALL_PERMISSIONS.filter((p) => p !== 'agent.operate') },
  { id: 'role-operator', name: 'operator', description: 'Runs the certificate lifecycle; no identity or plugin administration', permissions: operatorSet },
  { id: 'role-viewer', name: 'viewer', description: 'Read-only on inventory and configuration; no audit trail', permissions: reads },
  { id: 'role-agent', name: 'agent', description: 'A deployment agent acting for itself', permissions: ['agent.operate'] },
  { id: 'role-mcp', name: 'mcp', description: 'AI assistants through the MCP server: read, create and renew', permissions: [...reads, 'cert.create', 'cert.renew', 'job.cancel'] },
  { id: 'role-cli', name: 'cli', description: 'Automation through the certctl CLI', permissions: operatorSet },
  { id: 'role-auditor', name: 'auditor', description: 'Reads and exports the audit trail, nothing else', permissions: ['audit.read', 'audit.export'] },
];
