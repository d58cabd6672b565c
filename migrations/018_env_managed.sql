-- Configuration from environment variables (kernel/src/bootstrap, docs/operations.md).
--
-- managed_by: who owns a notifier or protocol endpoint row. NULL for rows made through
-- the API; 'env' for rows the kernel creates and updates at start-up from CERTCTL_*
-- variables (CERTCTL_EST_*, CERTCTL_SMTP_*, ...). The API refuses to rename, reconfigure,
-- enable/disable or delete an env-managed row: the variables are its source of truth.
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS managed_by text CHECK (managed_by IN ('env'));
ALTER TABLE protocol_endpoints ADD COLUMN IF NOT EXISTS managed_by text CHECK (managed_by IN ('env'));

-- The scheduled digest e-mail: one row per digest. A kernel claims a scheduled send by
-- moving claimed_at to now in one conditional UPDATE (only when the previous claim is an
-- interval old), so of several kernels one sends per interval, and a restart does not send
-- again early. A failed send moves claimed_at back so the next try comes sooner.
CREATE TABLE IF NOT EXISTS digest_state (
  id text PRIMARY KEY,
  claimed_at timestamptz(3),
  last_sent_at timestamptz(3),
  last_error text,
  updated_at timestamptz(3) NOT NULL DEFAULT now()
);
INSERT INTO digest_state (id) VALUES ('digest') ON CONFLICT (id) DO NOTHING;
