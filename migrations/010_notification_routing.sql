-- Notification routing and delivery.
--
-- A lifecycle event (ExpirationWarning, RenewalFailure, ...) becomes one notifications row per
-- notifier instance that routes it (notifier_id set, channel = the notifier's plugin id), or,
-- when no notifier routes it, one unrouted row (notifier_id NULL) that keeps the event visible.
-- event_key is the event's dedupe key, shared by all its rows; dedupe_key (unique) is per row:
-- the event key for the unrouted row, the event key plus the notifier id for a routed one.
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS notifier_id text REFERENCES notifiers(id) ON DELETE SET NULL;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS severity text NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'critical'));
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS event_key text;
-- Delivery: attempts so far, when the next one is due (NULL: now), and a lease so that of
-- several replicas only the one that claimed a row sends it.
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz(3);
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS lease_owner text;
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz(3);
UPDATE notifications SET event_key = dedupe_key WHERE event_key IS NULL AND dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_event_key_idx ON notifications (event_key);
CREATE INDEX IF NOT EXISTS notifications_due_idx ON notifications (next_attempt_at, created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS notifications_notifier_idx ON notifications (notifier_id);

-- Which events each notifier instance receives. Empty lists mean "all".
--   event_types: notification types (ExpirationWarning, ...)
--   min_severity: info < warning < critical
--   renewal_policy_ids: only certificates under these renewal policies
--   recipients: explicit addresses (e-mail); when empty, the certificate owner's e-mail is used
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS event_types jsonb NOT NULL DEFAULT '[]';
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS min_severity text NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical'));
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS renewal_policy_ids jsonb NOT NULL DEFAULT '[]';
ALTER TABLE notifiers ADD COLUMN IF NOT EXISTS recipients jsonb NOT NULL DEFAULT '[]';
