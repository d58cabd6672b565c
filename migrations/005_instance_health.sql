-- Health of plugin instances: the last failed plugin call (code and a short message from
-- the runner, never config secrets) and the last successful one, so an operator sees on
-- the issuer, target or notifier itself why its plugin calls fail. last_success_at is
-- written at most about once a minute per instance to keep plugin calls cheap.
ALTER TABLE issuers ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE issuers ADD COLUMN IF NOT EXISTS last_error_code text;
ALTER TABLE issuers ADD COLUMN IF NOT EXISTS last_error_at timestamptz(3);
ALTER TABLE issuers ADD COLUMN IF NOT EXISTS last_success_at timestamptz(3);
ALTER TABLE targets ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE targets ADD COLUMN IF NOT EXISTS last_error_code text;
ALTER TABLE targets ADD COLUMN IF NOT EXISTS last_error_at timestamptz(3);
ALTER TABLE targets ADD COLUMN IF NOT EXISTS last_success_at timestamptz(3);
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS last_error_code text;
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS last_error_at timestamptz(3);
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS last_success_at timestamptz(3);
