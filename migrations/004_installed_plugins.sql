-- Third-party plugins installed through the API (POST /api/v1/plugins). The package
-- archive itself is kept here too, so that every replica can unpack the same files
-- into its own data directory (`dir` is relative to CERTCTL_DATA_DIR) without a
-- shared file system.
CREATE TABLE IF NOT EXISTS installed_plugins (
  id text PRIMARY KEY,
  package_name text NOT NULL,
  version text NOT NULL,
  kind text NOT NULL,
  dir text NOT NULL,
  archive bytea NOT NULL,
  archive_sha256 text NOT NULL,
  -- What the manifest asks for, and the subset the operator granted.
  requested_capabilities jsonb NOT NULL DEFAULT '{}',
  granted_capabilities jsonb NOT NULL DEFAULT '{}',
  -- True until the operator has decided on everything the current version asks for.
  grant_pending boolean NOT NULL DEFAULT true,
  enabled boolean NOT NULL DEFAULT false,
  status_reason text,
  installed_by text NOT NULL,
  installed_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  CONSTRAINT installed_plugins_grant_before_enable CHECK (NOT (enabled AND grant_pending))
);
