-- Approval requests: the two-person gate in front of issuance/renewal jobs on profiles that
-- require approval (kind cert_issuance, one per job) and in front of edits of such profiles
-- (kind profile_edit, carrying the proposed change until someone other than the requester
-- approves it). A request is decided once: the trigger below refuses any change to a row
-- that is no longer pending, so approved can never become rejected or the other way round.
CREATE TABLE IF NOT EXISTS approval_requests (
  id text PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('cert_issuance', 'profile_edit')),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
  job_id text REFERENCES jobs(id) ON DELETE CASCADE,
  certificate_id text REFERENCES managed_certificates(id) ON DELETE CASCADE,
  profile_id text REFERENCES certificate_profiles(id) ON DELETE CASCADE,
  proposed_change jsonb,
  requested_by text NOT NULL,
  decided_by text,
  decided_at timestamptz(3),
  reason text,
  expires_at timestamptz(3),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  CONSTRAINT approval_requests_kind_shape CHECK (
    (kind = 'cert_issuance' AND job_id IS NOT NULL AND proposed_change IS NULL)
    OR (kind = 'profile_edit' AND job_id IS NULL AND profile_id IS NOT NULL AND proposed_change IS NOT NULL)),
  CONSTRAINT approval_requests_decision_shape CHECK ((status = 'pending') = (decided_at IS NULL))
);
-- At most one open request per job (a job re-held for approval after a profile switch gets a new one).
CREATE UNIQUE INDEX IF NOT EXISTS apr_job_pending_idx ON approval_requests (job_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS apr_job_idx ON approval_requests (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS apr_status_idx ON approval_requests (status, created_at, id);
CREATE INDEX IF NOT EXISTS apr_created_idx ON approval_requests (created_at, id);
CREATE INDEX IF NOT EXISTS apr_profile_idx ON approval_requests (profile_id) WHERE profile_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS apr_cert_idx ON approval_requests (certificate_id) WHERE certificate_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS apr_expiry_idx ON approval_requests (expires_at) WHERE status = 'pending';

CREATE OR REPLACE FUNCTION certctl_approval_decided_once() RETURNS trigger AS $$
BEGIN
  IF OLD.status <> 'pending' THEN
    RAISE EXCEPTION 'approval request % is already %; a decided request cannot change', OLD.id, OLD.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS approval_requests_decided_once ON approval_requests;
CREATE TRIGGER approval_requests_decided_once BEFORE UPDATE ON approval_requests
  FOR EACH ROW EXECUTE FUNCTION certctl_approval_decided_once();
