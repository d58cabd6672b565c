-- The kernel's CA keystore: one row per CA certificate an issuer instance signs (or
-- signed) with. `generated`: a CA the kernel made; its private key is kept here,
-- sealed with the config cipher (AES-256-GCM), never in clear. `configured`: the
-- operator's sub-CA from CERTCTL_CA_CERT_PATH / CERTCTL_CA_KEY_PATH; its key stays in
-- the operator's file and is read on use, so encrypted_key is null.
-- An issuer has at most one `active` CA; a replaced one stays as `retiring` (it may
-- still be needed to publish revocation for what it signed) until it is `retired`.
-- parent_id links a CA to the CA (row) that signed it, for hierarchies kept here;
-- certificates above a configured CA that are not rows live in chain_pem.
-- Serial numbers of issued certificates are 127 random bits from the keystore
-- (no counter to coordinate between replicas); collisions are not a practical concern.
CREATE TABLE IF NOT EXISTS certificate_authorities (
  id text PRIMARY KEY,
  -- Deleting an issuer must not silently destroy the key that signed its certificates
  -- (it is needed to revoke them): the delete is refused (NO ACTION, which reports
  -- 23503 like the kernel's other "in use" references); disable the issuer instead.
  issuer_id text NOT NULL REFERENCES issuers(id),
  parent_id text REFERENCES certificate_authorities(id),
  subject text NOT NULL,
  source text NOT NULL CHECK (source IN ('generated', 'configured')),
  key_algorithm text NOT NULL,
  certificate_pem text NOT NULL,
  chain_pem text,
  encrypted_key text,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retiring', 'retired')),
  serial_number text NOT NULL,
  subject_key_id text,
  fingerprint_sha256 text NOT NULL,
  not_before timestamptz(3) NOT NULL,
  not_after timestamptz(3) NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  CONSTRAINT ca_key_by_source CHECK ((source = 'generated') = (encrypted_key IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS ca_one_active_per_issuer ON certificate_authorities (issuer_id) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS ca_issuer_idx ON certificate_authorities (issuer_id, created_at);
CREATE INDEX IF NOT EXISTS ca_parent_idx ON certificate_authorities (parent_id);
