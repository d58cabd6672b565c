-- Revocation: what the kernel has revoked, the CRLs it publishes and the OCSP
-- responder certificates it answers with.
--
-- One row per revoked certificate version (serial). ca_id names the kernel CA that
-- signed it (null for certificates from an external CA: the issuer plugin is told,
-- and that CA publishes the revocation). short_lived rows (lifetime under an hour)
-- are kept for the record but left out of CRLs and OCSP: expiry revokes them soon enough.
CREATE TABLE IF NOT EXISTS certificate_revocations (
  id text PRIMARY KEY,
  -- The record outlives the inventory row: a CRL must keep listing the serial.
  certificate_id text REFERENCES managed_certificates(id) ON DELETE SET NULL,
  version_id text,
  issuer_id text NOT NULL,
  ca_id text REFERENCES certificate_authorities(id),
  serial_number text NOT NULL,
  reason text NOT NULL,
  reason_code integer NOT NULL CHECK (reason_code BETWEEN 0 AND 10 AND reason_code <> 7),
  revoked_at timestamptz(3) NOT NULL,
  revoked_by text NOT NULL,
  not_after timestamptz(3) NOT NULL,
  short_lived boolean NOT NULL DEFAULT false,
  created_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS revocations_serial_uq ON certificate_revocations (issuer_id, serial_number);
CREATE INDEX IF NOT EXISTS revocations_ca_idx ON certificate_revocations (ca_id, not_after);
CREATE INDEX IF NOT EXISTS revocations_cert_idx ON certificate_revocations (certificate_id);
CREATE INDEX IF NOT EXISTS revocations_created_idx ON certificate_revocations (created_at, id);

-- The current CRL of each kernel CA. next_number is handed out before signing
-- (atomically, so two replicas never sign the same number); crl_number is the
-- number of the CRL stored here, only ever replaced by a higher one.
CREATE TABLE IF NOT EXISTS crl_state (
  ca_id text PRIMARY KEY REFERENCES certificate_authorities(id),
  issuer_id text NOT NULL,
  next_number bigint NOT NULL DEFAULT 1,
  crl_number bigint,
  this_update timestamptz(3),
  next_update timestamptz(3),
  entries integer NOT NULL DEFAULT 0,
  -- When (database clock) the revocations in this CRL were read: later ones make it stale.
  read_at timestamptz(3),
  der bytea,
  etag text,
  updated_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crl_state_issuer_idx ON crl_state (issuer_id);

-- Delegated OCSP responder certificates (EKU OCSPSigning, id-pkix-ocsp-nocheck),
-- one active per CA, replaced before they expire. The key is sealed with the config
-- cipher like a CA key and opened only to sign in the crypto pool.
CREATE TABLE IF NOT EXISTS ocsp_responders (
  id text PRIMARY KEY,
  ca_id text NOT NULL REFERENCES certificate_authorities(id),
  issuer_id text NOT NULL,
  certificate_pem text NOT NULL,
  encrypted_key text NOT NULL,
  serial_number text NOT NULL,
  not_before timestamptz(3) NOT NULL,
  not_after timestamptz(3) NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  created_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ocsp_one_active_per_ca ON ocsp_responders (ca_id) WHERE status = 'active';

-- The OCSP responder looks serials up (case-insensitively: issuers store hex in either case).
CREATE INDEX IF NOT EXISTS cv_serial_lower_idx ON certificate_versions (lower(serial_number));
