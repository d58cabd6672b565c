-- Expired plugin_kv rows are deleted by a kernel loop across all plugins
-- (plugin-kv-sweep.ts): an index on expiry alone, so the sweep reads only what
-- has expired instead of walking each plugin's rows.
CREATE INDEX IF NOT EXISTS plugin_kv_expires_at_idx ON plugin_kv (expires_at) WHERE expires_at IS NOT NULL;
