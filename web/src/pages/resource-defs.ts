import type { Column } from '../components/DataTable.vue';
import { fmtDate } from '../format';

export interface FilterDef {
  name: string;
  label: string;
  options?: string[];
}

export interface RowAction {
  id: string;
  label: string;
  permission: string;
  /** POST to `${apiPath}/${id}/${action}` unless `run` is given. */
  action?: string;
  confirm?: string;
  /** Ask for one body field before posting (a reason, an id). */
  prompt?: { field: string; label: string };
  when?: (row: Record<string, unknown>) => boolean;
}

/** A plain API collection rendered by ResourcePage: list, filters, create-from-schema, delete, row actions. */
export interface ResourceDef {
  key: string;
  title: string;
  apiPath: string;
  columns: Column[];
  sort: string;
  filters?: FilterDef[];
  createPermission?: string;
  deletePermission?: string;
  /** Fields left out of the create form (server-managed or rarely used). */
  createOmit?: string[];
  liveTopics?: string[];
  actions?: RowAction[];
  /** Collection-wide actions shown in the header (POST to `${apiPath}/${path}`). */
  headerActions?: { id: string; label: string; permission: string; path: string }[];
  detailRoute?: (row: Record<string, unknown>) => string;
  empty?: string;
}

const date = (v: unknown) => fmtDate(v);
const bool = (v: unknown) => (v === true ? 'yes' : v === false ? 'no' : '—');

export const RESOURCES: Record<string, ResourceDef> = {
  teams: {
    key: 'teams', title: 'Teams', apiPath: '/api/v1/teams', sort: 'name', liveTopics: ['team'],
    columns: [{ key: 'name', label: 'Name', sort: 'name' }, { key: 'description', label: 'Description' }, { key: 'created_at', label: 'Created', sort: 'created_at', format: date }],
    filters: [{ name: 'name', label: 'Name' }],
    createPermission: 'owner.manage', deletePermission: 'owner.manage', createOmit: ['id'],
    empty: 'No teams yet. Teams group owners for notification routing.',
  },
  owners: {
    key: 'owners', title: 'Owners', apiPath: '/api/v1/owners', sort: 'name', liveTopics: ['owner'],
    columns: [{ key: 'name', label: 'Name', sort: 'name' }, { key: 'email', label: 'Email', sort: 'email' }, { key: 'team_id', label: 'Team' }, { key: 'created_at', label: 'Created', sort: 'created_at', format: date }],
    filters: [{ name: 'team_id', label: 'Team id' }, { name: 'email', label: 'Email' }],
    createPermission: 'owner.manage', deletePermission: 'owner.manage', createOmit: ['id'],
    empty: 'No owners yet.',
  },
  agentGroups: {
    key: 'agent-groups', title: 'Agent groups', apiPath: '/api/v1/agent-groups', sort: 'name', liveTopics: ['agent_group'],
    columns: [
      { key: 'name', label: 'Name', sort: 'name' }, { key: 'match_os', label: 'OS' }, { key: 'match_architecture', label: 'Arch' },
      { key: 'match_ip_cidr', label: 'CIDR' }, { key: 'match_version', label: 'Version' }, { key: 'enabled', label: 'Enabled', format: bool },
    ],
    filters: [{ name: 'enabled', label: 'Enabled', options: ['true', 'false'] }],
    createPermission: 'agent.manage', deletePermission: 'agent.manage', createOmit: ['id'],
    empty: 'No agent groups. Groups match agents by OS, architecture, CIDR or version.',
  },
  profiles: {
    key: 'profiles', title: 'Profiles', apiPath: '/api/v1/profiles', sort: 'name', liveTopics: ['profile', 'approval'],
    columns: [
      { key: 'name', label: 'Name', sort: 'name' }, { key: 'allowed_ekus', label: 'EKUs' },
      { key: 'max_ttl_seconds', label: 'Max TTL (s)', sort: 'max_ttl_seconds' }, { key: 'requires_approval', label: 'Approval', format: bool },
      { key: 'enabled', label: 'Enabled', format: bool },
    ],
    filters: [{ name: 'enabled', label: 'Enabled', options: ['true', 'false'] }, { name: 'requires_approval', label: 'Needs approval', options: ['true', 'false'] }],
    createPermission: 'profile.manage', deletePermission: 'profile.manage', createOmit: ['id'],
    empty: 'No certificate profiles yet.',
  },
  policies: {
    key: 'policies', title: 'Policies', apiPath: '/api/v1/policies', sort: 'name', liveTopics: ['policy'],
    columns: [
      { key: 'name', label: 'Name', sort: 'name' }, { key: 'type', label: 'Type', sort: 'type' }, { key: 'severity', label: 'Severity' },
      { key: 'config', label: 'Config' }, { key: 'enabled', label: 'Enabled', format: bool },
    ],
    filters: [
      { name: 'type', label: 'Type', options: ['key_algorithm', 'min_key_size', 'max_lifetime', 'san_pattern', 'issuer_restriction'] },
      { name: 'severity', label: 'Severity', options: ['Info', 'Warning', 'Error', 'Critical'] },
    ],
    createPermission: 'policy.manage', deletePermission: 'policy.manage', createOmit: ['id'],
    empty: 'No policies yet.',
  },
  renewalPolicies: {
    key: 'renewal-policies', title: 'Renewal policies', apiPath: '/api/v1/renewal-policies', sort: 'name', liveTopics: ['renewal_policy'],
    columns: [
      { key: 'name', label: 'Name', sort: 'name' }, { key: 'renewal_window_days', label: 'Window (days)', sort: 'renewal_window_days' },
      { key: 'alert_thresholds_days', label: 'Alerts (days)' }, { key: 'auto_renew', label: 'Auto-renew', format: bool }, { key: 'max_retries', label: 'Retries' },
    ],
    filters: [{ name: 'auto_renew', label: 'Auto-renew', options: ['true', 'false'] }],
    createPermission: 'policy.manage', deletePermission: 'policy.manage', createOmit: ['id'],
    empty: 'No renewal policies yet.',
  },
  agents: {
    key: 'agents', title: 'Agents', apiPath: '/api/v1/agents', sort: 'name', liveTopics: ['agent'],
    columns: [
      { key: 'name', label: 'Name', sort: 'name' }, { key: 'status', label: 'Status' }, { key: 'hostname', label: 'Host' }, { key: 'os', label: 'OS' },
      { key: 'architecture', label: 'Arch' }, { key: 'version', label: 'Version' }, { key: 'last_heartbeat_at', label: 'Last heartbeat', sort: 'last_heartbeat_at', format: date },
    ],
    filters: [{ name: 'status', label: 'Status', options: ['Online', 'Offline', 'Degraded', 'Disabled'] }, { name: 'os', label: 'OS' }, { name: 'architecture', label: 'Arch' }],
    createPermission: 'agent.manage', deletePermission: 'agent.manage', createOmit: ['id'],
    detailRoute: (r) => `/agents/${r.id}`,
    empty: 'No agents registered. Install one with `certctl agent` and a bootstrap token.',
  },
  notifications: {
    key: 'notifications', title: 'Notifications', apiPath: '/api/v1/notifications', sort: '-created_at', liveTopics: ['notification'],
    columns: [
      { key: 'subject', label: 'Subject' }, { key: 'type', label: 'Type' }, { key: 'severity', label: 'Severity' }, { key: 'certificate_id', label: 'Certificate' },
      { key: 'channel', label: 'Channel' }, { key: 'status', label: 'Status' }, { key: 'read_at', label: 'Read', format: (v) => (v ? 'read' : 'unread') },
      { key: 'created_at', label: 'Created', sort: 'created_at', format: date },
    ],
    filters: [
      { name: 'read', label: 'Read', options: ['true', 'false'] }, { name: 'status', label: 'Status', options: ['pending', 'sent', 'failed'] },
      { name: 'severity', label: 'Severity', options: ['info', 'warning', 'critical'] }, { name: 'certificate_id', label: 'Certificate id' },
    ],
    actions: [{ id: 'read', label: 'Mark read', permission: 'notification.manage', action: 'read', when: (r) => !r.read_at }],
    headerActions: [{ id: 'read-all', label: 'Mark all read', permission: 'notification.manage', path: 'read-all' }],
    empty: 'No notifications.',
  },
  approvals: {
    key: 'approvals', title: 'Approvals', apiPath: '/api/v1/approvals', sort: '-created_at', liveTopics: ['approval', 'job'],
    columns: [
      { key: 'id', label: 'Id' }, { key: 'kind', label: 'Kind', sort: 'kind' }, { key: 'status', label: 'Status', sort: 'status' }, { key: 'job_id', label: 'Job' },
      { key: 'certificate_id', label: 'Certificate' }, { key: 'profile_id', label: 'Profile' }, { key: 'requested_by', label: 'Requested by' },
      { key: 'expires_at', label: 'Expires', sort: 'expires_at', format: date },
    ],
    filters: [{ name: 'status', label: 'Status', options: ['pending', 'approved', 'rejected', 'expired', 'cancelled'] }, { name: 'kind', label: 'Kind', options: ['cert_issuance', 'profile_edit'] }],
    actions: [
      { id: 'approve', label: 'Approve', permission: 'job.approve', action: 'approve', when: (r) => r.status === 'pending' },
      { id: 'reject', label: 'Reject', permission: 'job.approve', action: 'reject', when: (r) => r.status === 'pending', prompt: { field: 'reason', label: 'Why is this request rejected?' } },
    ],
    empty: 'No approval requests.',
  },
  discovery: {
    key: 'discovery', title: 'Discovery', apiPath: '/api/v1/discovered-certificates', sort: '-last_seen_at', liveTopics: ['discovered_certificate'],
    columns: [
      { key: 'common_name', label: 'Common name', sort: 'common_name' }, { key: 'status', label: 'Status' }, { key: 'agent_id', label: 'Agent' },
      { key: 'source_path', label: 'Path' }, { key: 'issuer_dn', label: 'Issuer' }, { key: 'not_after', label: 'Expires', sort: 'not_after', format: date },
      { key: 'last_seen_at', label: 'Last seen', sort: 'last_seen_at', format: date },
    ],
    filters: [{ name: 'status', label: 'Status', options: ['Unmanaged', 'Managed', 'Dismissed'] }, { name: 'agent_id', label: 'Agent id' }],
    actions: [
      { id: 'claim', label: 'Claim', permission: 'discovery.manage', action: 'claim', when: (r) => r.status === 'Unmanaged', prompt: { field: 'certificate_id', label: 'Managed certificate id this file holds' } },
      { id: 'dismiss', label: 'Dismiss', permission: 'discovery.manage', action: 'dismiss', when: (r) => r.status === 'Unmanaged' },
    ],
    empty: 'Nothing discovered yet. Agents report certificates they find on disk.',
  },
  roles: {
    key: 'roles', title: 'Roles', apiPath: '/api/v1/auth/roles', sort: 'name', liveTopics: ['role'],
    columns: [
      { key: 'name', label: 'Name', sort: 'name' }, { key: 'description', label: 'Description' }, { key: 'builtin', label: 'Built-in', format: bool },
      { key: 'permissions', label: 'Permissions', format: (v) => (Array.isArray(v) ? `${v.length} permissions` : '—') },
    ],
    createPermission: 'auth.role.create', deletePermission: 'auth.role.delete', createOmit: ['id'],
    empty: 'No roles.',
  },
};

RESOURCES.jobs = {
  key: 'jobs', title: 'Jobs', apiPath: '/api/v1/jobs', sort: '-created_at', liveTopics: ['job', 'approval'],
  columns: [
    { key: 'id', label: 'Id' }, { key: 'type', label: 'Type', sort: 'type' }, { key: 'status', label: 'Status', sort: 'status' },
    { key: 'certificate_id', label: 'Certificate' }, { key: 'agent_id', label: 'Agent' }, { key: 'attempts', label: 'Attempts' },
    { key: 'verification_status', label: 'Verified' }, { key: 'created_at', label: 'Created', sort: 'created_at', format: date },
  ],
  filters: [
    { name: 'status', label: 'Status', options: ['Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running', 'Completed', 'Failed', 'Cancelled'] },
    { name: 'type', label: 'Type', options: ['Issuance', 'Renewal', 'Deployment', 'Validation', 'Revocation'] },
    { name: 'certificate_id', label: 'Certificate id' },
  ],
  actions: [
    { id: 'approve', label: 'Approve', permission: 'job.approve', action: 'approve', when: (r) => r.status === 'AwaitingApproval' },
    { id: 'reject', label: 'Reject', permission: 'job.approve', action: 'reject', when: (r) => r.status === 'AwaitingApproval', prompt: { field: 'reason', label: 'Why is this job rejected?' } },
    { id: 'cancel', label: 'Cancel', permission: 'job.cancel', action: 'cancel', when: (r) => ['Pending', 'AwaitingCSR', 'AwaitingApproval'].includes(String(r.status)), confirm: 'Cancel this job?' },
  ],
  detailRoute: (r) => `/jobs/${r.id}`,
  empty: 'No jobs. Issuance, renewal and deployment jobs appear here as they are queued.',
};
