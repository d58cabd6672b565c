-- certctl kernel schema. Plain SQL, run unchanged on PGlite and PostgreSQL.
-- IDs are readable prefixed text (mc-..., iss-...). Written to be re-runnable.

CREATE TABLE IF NOT EXISTS teams (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS owners (
  id text PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL DEFAULT '',
  team_id text REFERENCES teams(id) ON DELETE RESTRICT,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS owners_team_idx ON owners (team_id);

CREATE TABLE IF NOT EXISTS agents (
  id text PRIMARY KEY,
  name text NOT NULL,
  status text NOT NULL DEFAULT 'Offline' CHECK (status IN ('Online', 'Offline', 'Degraded', 'Disabled')),
  hostname text NOT NULL DEFAULT '',
  os text NOT NULL DEFAULT '',
  platform text NOT NULL DEFAULT '',
  architecture text NOT NULL DEFAULT '',
  ip_address text NOT NULL DEFAULT '',
  version text NOT NULL DEFAULT '',
  capabilities jsonb NOT NULL DEFAULT '[]',
  api_key_id text,
  last_heartbeat_at timestamptz,
  registered_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS agents_status_idx ON agents (status);

CREATE TABLE IF NOT EXISTS agent_groups (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  match_os text,
  match_architecture text,
  match_ip_cidr text,
  match_version text,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS agent_group_members (
  agent_group_id text NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
  agent_id text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  membership_type text NOT NULL DEFAULT 'include' CHECK (membership_type IN ('include', 'exclude')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_group_id, agent_id)
);

-- Issuers, targets and notifiers are instances of plugins: `type` is the plugin id,
-- `config` holds the non-secret settings, `encrypted_config` the secret ones (AES-256-GCM).
CREATE TABLE IF NOT EXISTS issuers (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  type text NOT NULL,
  config jsonb NOT NULL DEFAULT '{}',
  encrypted_config text,
  enabled boolean NOT NULL DEFAULT true,
  status_reason text,
  source text NOT NULL DEFAULT 'database' CHECK (source IN ('database', 'env')),
  test_status text NOT NULL DEFAULT 'untested' CHECK (test_status IN ('untested', 'success', 'failed')),
  tested_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS targets (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  type text NOT NULL,
  agent_id text REFERENCES agents(id) ON DELETE RESTRICT,
  config jsonb NOT NULL DEFAULT '{}',
  encrypted_config text,
  enabled boolean NOT NULL DEFAULT true,
  status_reason text,
  source text NOT NULL DEFAULT 'database' CHECK (source IN ('database', 'env')),
  test_status text NOT NULL DEFAULT 'untested' CHECK (test_status IN ('untested', 'success', 'failed')),
  tested_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS targets_agent_idx ON targets (agent_id);

CREATE TABLE IF NOT EXISTS notifiers (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  type text NOT NULL,
  config jsonb NOT NULL DEFAULT '{}',
  encrypted_config text,
  enabled boolean NOT NULL DEFAULT true,
  status_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS certificate_profiles (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  allowed_key_algorithms jsonb NOT NULL DEFAULT '[]',
  max_ttl_seconds integer,
  allowed_ekus jsonb NOT NULL DEFAULT '["serverAuth"]',
  required_san_patterns jsonb NOT NULL DEFAULT '[]',
  requires_approval boolean NOT NULL DEFAULT false,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS renewal_policies (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  renewal_window_days integer NOT NULL DEFAULT 30,
  alert_thresholds_days jsonb NOT NULL DEFAULT '[30, 14, 7, 0]',
  auto_renew boolean NOT NULL DEFAULT true,
  max_retries integer NOT NULL DEFAULT 3,
  retry_interval_seconds integer NOT NULL DEFAULT 3600,
  agent_group_id text REFERENCES agent_groups(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS policies (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  type text NOT NULL CHECK (type IN ('key_algorithm', 'min_key_size', 'max_lifetime', 'san_pattern', 'issuer_restriction')),
  config jsonb NOT NULL DEFAULT '{}',
  severity text NOT NULL DEFAULT 'Warning' CHECK (severity IN ('Info', 'Warning', 'Error', 'Critical')),
  enabled boolean NOT NULL DEFAULT true,
  agent_group_id text REFERENCES agent_groups(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS managed_certificates (
  id text PRIMARY KEY,
  name text NOT NULL,
  common_name text NOT NULL,
  sans jsonb NOT NULL DEFAULT '[]',
  environment text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'Pending' CHECK (status IN
    ('Pending', 'Active', 'Expiring', 'Expired', 'RenewalInProgress', 'Failed', 'Revoked', 'Archived')),
  owner_id text REFERENCES owners(id) ON DELETE RESTRICT,
  issuer_id text REFERENCES issuers(id) ON DELETE RESTRICT,
  profile_id text REFERENCES certificate_profiles(id) ON DELETE RESTRICT,
  renewal_policy_id text REFERENCES renewal_policies(id) ON DELETE SET NULL,
  agent_id text REFERENCES agents(id) ON DELETE SET NULL,
  serial_number text,
  fingerprint_sha256 text,
  key_algorithm text,
  key_size integer,
  not_before timestamptz,
  expires_at timestamptz,
  tags jsonb NOT NULL DEFAULT '{}',
  last_renewal_at timestamptz,
  last_deployment_at timestamptz,
  revoked_at timestamptz,
  revocation_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mc_status_idx ON managed_certificates (status, id);
CREATE INDEX IF NOT EXISTS mc_expires_idx ON managed_certificates (expires_at, id);
CREATE INDEX IF NOT EXISTS mc_created_idx ON managed_certificates (created_at, id);
CREATE INDEX IF NOT EXISTS mc_updated_idx ON managed_certificates (updated_at, id);
CREATE INDEX IF NOT EXISTS mc_cn_idx ON managed_certificates (common_name, id);
CREATE INDEX IF NOT EXISTS mc_name_idx ON managed_certificates (name, id);
CREATE INDEX IF NOT EXISTS mc_owner_idx ON managed_certificates (owner_id);
CREATE INDEX IF NOT EXISTS mc_issuer_idx ON managed_certificates (issuer_id);
CREATE INDEX IF NOT EXISTS mc_profile_idx ON managed_certificates (profile_id);
CREATE INDEX IF NOT EXISTS mc_agent_idx ON managed_certificates (agent_id);

CREATE TABLE IF NOT EXISTS certificate_target_mappings (
  certificate_id text NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
  target_id text NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (certificate_id, target_id)
);
CREATE INDEX IF NOT EXISTS ctm_target_idx ON certificate_target_mappings (target_id);

CREATE TABLE IF NOT EXISTS certificate_versions (
  id text PRIMARY KEY,
  certificate_id text NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
  serial_number text NOT NULL,
  fingerprint_sha256 text NOT NULL,
  not_before timestamptz NOT NULL,
  not_after timestamptz NOT NULL,
  key_algorithm text,
  key_size integer,
  pem_chain text NOT NULL,
  csr_pem text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cv_cert_idx ON certificate_versions (certificate_id, created_at);

CREATE TABLE IF NOT EXISTS policy_violations (
  id text PRIMARY KEY,
  policy_id text NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
  certificate_id text REFERENCES managed_certificates(id) ON DELETE CASCADE,
  severity text NOT NULL CHECK (severity IN ('Info', 'Warning', 'Error', 'Critical')),
  message text NOT NULL,
  resolved_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS pv_policy_idx ON policy_violations (policy_id, created_at);
CREATE INDEX IF NOT EXISTS pv_cert_idx ON policy_violations (certificate_id);

-- Jobs: claimed with FOR UPDATE SKIP LOCKED and a lease (lease_owner, lease_expires_at).
CREATE TABLE IF NOT EXISTS jobs (
  id text PRIMARY KEY,
  type text NOT NULL CHECK (type IN ('Issuance', 'Renewal', 'Deployment', 'Validation', 'Revocation')),
  status text NOT NULL DEFAULT 'Pending' CHECK (status IN
    ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running', 'Completed', 'Failed', 'Cancelled')),
  certificate_id text REFERENCES managed_certificates(id) ON DELETE CASCADE,
  target_id text REFERENCES targets(id) ON DELETE SET NULL,
  agent_id text REFERENCES agents(id) ON DELETE SET NULL,
  payload jsonb NOT NULL DEFAULT '{}',
  result jsonb,
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 3,
  last_error text,
  scheduled_at timestamptz NOT NULL DEFAULT now(),
  lease_owner text,
  lease_expires_at timestamptz,
  approval_expires_at timestamptz,
  requested_by text,
  started_at timestamptz,
  completed_at timestamptz,
  verification_status text CHECK (verification_status IN ('pending', 'success', 'failed', 'skipped')),
  verification_error text,
  verified_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS jobs_runnable_idx ON jobs (scheduled_at, id) WHERE status = 'Pending';
CREATE INDEX IF NOT EXISTS jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'Running';
CREATE INDEX IF NOT EXISTS jobs_status_idx ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_cert_idx ON jobs (certificate_id);
CREATE INDEX IF NOT EXISTS jobs_agent_idx ON jobs (agent_id);
CREATE INDEX IF NOT EXISTS jobs_created_idx ON jobs (created_at, id);

CREATE TABLE IF NOT EXISTS notifications (
  id text PRIMARY KEY,
  type text NOT NULL CHECK (type IN ('ExpirationWarning', 'RenewalSuccess', 'RenewalFailure', 'DeploymentSuccess',
    'DeploymentFailure', 'PolicyViolation', 'Revocation')),
  certificate_id text REFERENCES managed_certificates(id) ON DELETE CASCADE,
  channel text NOT NULL DEFAULT 'email',
  recipient text NOT NULL DEFAULT '',
  subject text NOT NULL DEFAULT '',
  message text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  dedupe_key text UNIQUE,
  error text,
  sent_at timestamptz,
  read_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notifications_status_idx ON notifications (status, created_at);
CREATE INDEX IF NOT EXISTS notifications_cert_idx ON notifications (certificate_id);

-- Identity: API keys (SHA-256 hashed), roles, and grants with a scope.
CREATE TABLE IF NOT EXISTS api_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  key_hash text NOT NULL UNIQUE,
  key_prefix text NOT NULL,
  actor_type text NOT NULL DEFAULT 'user' CHECK (actor_type IN ('user', 'agent', 'service')),
  created_by text,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS roles (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  builtin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS role_permissions (
  role_id text NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
  permission text NOT NULL,
  PRIMARY KEY (role_id, permission)
);

CREATE TABLE IF NOT EXISTS api_key_roles (
  id text PRIMARY KEY,
  api_key_id text NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
  role_id text NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
  scope_type text NOT NULL DEFAULT 'global' CHECK (scope_type IN ('global', 'profile', 'issuer')),
  scope_id text NOT NULL DEFAULT '',
  granted_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (api_key_id, role_id, scope_type, scope_id),
  CHECK ((scope_type = 'global') = (scope_id = ''))
);
CREATE INDEX IF NOT EXISTS akr_role_idx ON api_key_roles (role_id);

-- Tamper-evident audit trail: append-only (trigger below) and hash-chained by seq.
CREATE TABLE IF NOT EXISTS audit_events (
  seq bigint PRIMARY KEY,
  id text NOT NULL UNIQUE,
  occurred_at timestamptz NOT NULL,
  category text NOT NULL CHECK (category IN ('api', 'lifecycle', 'auth', 'system')),
  actor text NOT NULL,
  actor_type text NOT NULL,
  action text NOT NULL,
  resource_type text NOT NULL DEFAULT '',
  resource_id text NOT NULL DEFAULT '',
  method text,
  path text,
  status_code integer,
  latency_ms integer,
  body_sha256 text,
  request_id text,
  details jsonb NOT NULL DEFAULT '{}',
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time_idx ON audit_events (occurred_at, seq);
CREATE INDEX IF NOT EXISTS audit_resource_idx ON audit_events (resource_type, resource_id);
CREATE INDEX IF NOT EXISTS audit_actor_idx ON audit_events (actor, occurred_at);
CREATE INDEX IF NOT EXISTS audit_action_idx ON audit_events (action, occurred_at);

CREATE OR REPLACE FUNCTION certctl_audit_is_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events;
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION certctl_audit_is_append_only();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION certctl_audit_is_append_only();

-- Scheduler history: which replica ran which loop when (the single-runner check reads it).
CREATE TABLE IF NOT EXISTS scheduler_runs (
  id bigserial PRIMARY KEY,
  loop text NOT NULL,
  replica_id text NOT NULL,
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  outcome text NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'ok', 'error')),
  error text
);
CREATE INDEX IF NOT EXISTS scheduler_runs_loop_idx ON scheduler_runs (loop, started_at);

CREATE TABLE IF NOT EXISTS kernel_settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
