import { CryptoError } from '../crypto/crypto-types.js';

/**
 * Why the CA keystore refused or failed. The code reaches the plugin (as the
 * `code` of the error its ctx.ca call rejects with), so an issuer can tell a bad
 * request (`csr_invalid`, `bad_request`: never retry) from a CA the operator must
 * fix (`ca_not_configured`, `ca_invalid`, `ca_expired`, `ca_missing`) from a
 * transient fault (`unavailable`, `timeout`, `crashed`: retry later).
 * Messages name files, settings and fields, never key material.
 */
export type CaErrorCode =
  | 'bad_request'
  | 'csr_invalid'
  | 'ca_missing'
  | 'ca_not_configured'
  | 'ca_invalid'
  | 'ca_expired'
  | 'unavailable'
  | 'timeout'
  | 'crashed';

export class CaError extends Error {
  constructor(readonly code: CaErrorCode, message: string) {
    super(message);
    this.name = 'CaError';
  }
}

/** A crypto-pool failure as the keystore reports it. */
export function fromCryptoError(err: unknown): unknown {
  if (!(err instanceof CryptoError)) return err;
  switch (err.code) {
    case 'csr_invalid':
    case 'bad_request':
    case 'timeout':
    case 'crashed':
    case 'unavailable':
      return new CaError(err.code, err.message);
    case 'issuer_invalid':
    case 'key_mismatch':
      return new CaError('ca_invalid', `the CA cannot sign: ${err.message}`);
  }
}
