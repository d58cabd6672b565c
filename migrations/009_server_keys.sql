-- Issuance bookkeeping.
--
-- certificate_versions.job_id: the Issuance/Renewal job that stored the version. Unique,
-- so a job retried after a crash between "stored" and "job completed" (its lease ran
-- out and the reaper put it back) finds its version instead of storing a second one.
-- Versions stored without a job (protocol enrolments) leave it NULL.
ALTER TABLE certificate_versions ADD COLUMN IF NOT EXISTS job_id text;
CREATE UNIQUE INDEX IF NOT EXISTS cv_job_idx ON certificate_versions (job_id) WHERE job_id IS NOT NULL;

-- Private keys the control plane generated (CERTCTL_KEYGEN_MODE=server, demo only),
-- sealed with the config cipher (AES-256-GCM), never stored or returned in clear.
-- A key is made for one issuing job (job_id: the same key is reused when the job is
-- retried or its CA order is looked at again) and, once issued, belongs to the version
-- (version_id) whose deployment hands it to the agent. Agent-made keys never come here.
CREATE TABLE IF NOT EXISTS certificate_keys (
  id text PRIMARY KEY,
  certificate_id text NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
  job_id text,
  version_id text REFERENCES certificate_versions(id) ON DELETE CASCADE,
  key_algorithm text NOT NULL,
  key_size integer,
  encrypted_key text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ck_job_idx ON certificate_keys (job_id) WHERE job_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ck_version_idx ON certificate_keys (version_id) WHERE version_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ck_cert_idx ON certificate_keys (certificate_id);
