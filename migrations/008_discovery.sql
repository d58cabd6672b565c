-- Filesystem discovery: certificates agents found on disk, triaged by operators.
-- One row per (certificate, agent, path): the same certificate in two files, or on two
-- hosts, is two sightings. Every column but the path is what the server read from the
-- PEM itself, never what the agent claimed.
CREATE TABLE IF NOT EXISTS discovered_certificates (
  id text PRIMARY KEY,
  agent_id text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  fingerprint_sha256 text NOT NULL,
  source_path text NOT NULL,
  common_name text NOT NULL DEFAULT '',
  sans jsonb NOT NULL DEFAULT '[]',
  subject_dn text NOT NULL DEFAULT '',
  issuer_dn text NOT NULL DEFAULT '',
  serial_number text NOT NULL,
  not_before timestamptz(3) NOT NULL,
  not_after timestamptz(3) NOT NULL,
  key_algorithm text,
  key_size integer,
  is_ca boolean NOT NULL DEFAULT false,
  certificate_pem text NOT NULL,
  status text NOT NULL DEFAULT 'Unmanaged' CHECK (status IN ('Unmanaged', 'Managed', 'Dismissed')),
  managed_certificate_id text REFERENCES managed_certificates(id) ON DELETE SET NULL,
  first_seen_at timestamptz(3) NOT NULL DEFAULT now(),
  last_seen_at timestamptz(3) NOT NULL DEFAULT now(),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (fingerprint_sha256, agent_id, source_path)
);
CREATE INDEX IF NOT EXISTS dc_agent_idx ON discovered_certificates (agent_id);
CREATE INDEX IF NOT EXISTS dc_status_idx ON discovered_certificates (status, last_seen_at, id);
CREATE INDEX IF NOT EXISTS dc_last_seen_idx ON discovered_certificates (last_seen_at, id);
CREATE INDEX IF NOT EXISTS dc_not_after_idx ON discovered_certificates (not_after, id);
CREATE INDEX IF NOT EXISTS dc_managed_idx ON discovered_certificates (managed_certificate_id);

-- One row per report an agent sent: what it scanned, what it found, what it could not read.
CREATE TABLE IF NOT EXISTS discovery_scans (
  id text PRIMARY KEY,
  agent_id text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  scanned_dirs jsonb NOT NULL DEFAULT '[]',
  certificates_found integer NOT NULL DEFAULT 0,
  certificates_new integer NOT NULL DEFAULT 0,
  certificates_rejected integer NOT NULL DEFAULT 0,
  errors jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ds_agent_idx ON discovery_scans (agent_id, created_at);
CREATE INDEX IF NOT EXISTS ds_created_idx ON discovery_scans (created_at, id);
