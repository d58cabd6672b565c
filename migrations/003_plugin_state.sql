-- Plugin state: the key-value store the capability broker gives each plugin (capability `kv`).
-- Rows are scoped by plugin id; an expired row reads as absent and is swept on writes.
CREATE TABLE IF NOT EXISTS plugin_kv (
  plugin_id text NOT NULL,
  key text NOT NULL,
  value jsonb NOT NULL,
  expires_at timestamptz(3),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (plugin_id, key)
);
CREATE INDEX IF NOT EXISTS plugin_kv_expiry_idx ON plugin_kv (plugin_id, expires_at) WHERE expires_at IS NOT NULL;
