-- Protocol endpoints: the configured instance of a protocol plugin (ACME, EST, SCEP
-- servers). Same shape as issuers/targets/notifiers (config validated by the plugin's
-- schema, secret fields sealed in encrypted_config, call health). A plugin serves its
-- manifest's mounts through at most one endpoint, so `type` is unique: the kernel
-- finds the endpoint of a request from the mount alone.
--
-- Protocol state (EST's enrolled certificates, later ACME accounts and orders) lives
-- in plugin_kv (migration 003): shared by every kernel, TTL-capable, private per plugin.
CREATE TABLE IF NOT EXISTS protocol_endpoints (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  type text NOT NULL UNIQUE,
  config jsonb NOT NULL DEFAULT '{}',
  encrypted_config text,
  enabled boolean NOT NULL DEFAULT true,
  status_reason text,
  last_error text,
  last_error_code text,
  last_error_at timestamptz(3),
  last_success_at timestamptz(3),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now()
);
