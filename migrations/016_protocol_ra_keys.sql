-- Registration-authority (RA) keys of enrolment protocols (SCEP, RFC 8894): one RSA
-- key and certificate per protocol plugin and issuer (so one plugin cannot open what
-- clients encrypted for another), signed by that issuer's kernel-kept CA, used to
-- decrypt the CMS EnvelopedData clients address to the RA and to sign the protocol's
-- replies. RSA because SCEP clients wrap the content key with RSA key transport, while
-- CAs are often ECDSA. The key is made by the kernel on first use, sealed with the
-- config cipher (AES-256-GCM) and never leaves the kernel: protocol plugins ask the
-- kernel to decrypt and sign (ctx.issuance.raDecrypt / raSign).
--
-- A new RA is made before the current one expires (or when the issuer's CA changes);
-- older rows stay until they expire so that a client holding the previous RA
-- certificate can still complete its transaction.
CREATE TABLE IF NOT EXISTS protocol_ra_keys (
  id text PRIMARY KEY,
  plugin_id text NOT NULL,
  issuer_id text NOT NULL REFERENCES issuers(id) ON DELETE CASCADE,
  certificate_pem text NOT NULL,
  chain_pem jsonb NOT NULL DEFAULT '[]',
  encrypted_key text NOT NULL,
  not_before timestamptz(3) NOT NULL,
  not_after timestamptz(3) NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS protocol_ra_keys_issuer_idx ON protocol_ra_keys (plugin_id, issuer_id, created_at DESC);
