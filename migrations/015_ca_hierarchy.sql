-- CA hierarchies under an issuer (root -> intermediate -> issuing), kept in
-- certificate_authorities. Path length and name constraints live in each CA's
-- certificate (the one source of truth; the API reads them from there).
--
-- Statuses: `active` is the issuer's one issuing CA (signs leaves); `standby` is a
-- CA in service that does not sign leaves (a root or intermediate above the issuing
-- CA, or a sibling ready to be activated): it may sign child CAs and publishes its
-- CRL and OCSP; `retiring` signs nothing more but keeps publishing revocation until
-- everything it signed has expired (drain_until, re-checked by the ca-drain loop);
-- `retired` is kept for the record only.
ALTER TABLE certificate_authorities DROP CONSTRAINT IF EXISTS certificate_authorities_status_check;
ALTER TABLE certificate_authorities ADD CONSTRAINT certificate_authorities_status_check
  CHECK (status IN ('active', 'standby', 'retiring', 'retired'));
ALTER TABLE certificate_authorities ADD COLUMN IF NOT EXISTS retiring_at timestamptz(3);
ALTER TABLE certificate_authorities ADD COLUMN IF NOT EXISTS drain_until timestamptz(3);
ALTER TABLE certificate_authorities ADD COLUMN IF NOT EXISTS retired_at timestamptz(3);
CREATE INDEX IF NOT EXISTS ca_status_idx ON certificate_authorities (status, drain_until);
