-- ACME Renewal Information (RFC 9773): the renewal window an issuer suggests for a
-- certificate's current version, and when certctl renews it.
--
-- One row per certificate, for the serial it was fetched for: after a renewal the serial
-- changes, the row no longer applies, and the expiry loop fetches the new version's window.
--   window_start/window_end  the suggested window; NULL when the issuer has none for it
--   selected_at              a time picked at random inside the window, once per window
--                            (a changed window is picked again); the Renewal is queued then
--   next_check_at            when to ask again (the issuer's Retry-After, clamped)
--   last_error               why the last fetch failed (the threshold rule applies meanwhile)
CREATE TABLE IF NOT EXISTS certificate_renewal_info (
  certificate_id text PRIMARY KEY REFERENCES managed_certificates(id) ON DELETE CASCADE,
  serial_number text NOT NULL,
  window_start timestamptz(3),
  window_end timestamptz(3),
  selected_at timestamptz(3),
  explanation_url text,
  checked_at timestamptz(3) NOT NULL,
  next_check_at timestamptz(3) NOT NULL,
  last_error text,
  updated_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cri_next_check_idx ON certificate_renewal_info (next_check_at);
CREATE INDEX IF NOT EXISTS cri_selected_idx ON certificate_renewal_info (selected_at) WHERE selected_at IS NOT NULL;
