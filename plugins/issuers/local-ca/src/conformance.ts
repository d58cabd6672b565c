import type { ConformanceOptions } from '@certctl/sdk/testing';
import { opensslFakeCa } from './openssl-fake-ca.js';

/**
 * Issuer conformance for the Local CA: the kernel's keystore is stood in for by an
 * openssl-backed CA, so issue/renew/getCaChain run end to end (the damaged and
 * tampered CSRs are refused by `openssl req -verify`, as the crypto pool refuses them).
 */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  const { ensure, sign } = opensslFakeCa();
  return {
    config: { mode: 'self-signed', subject: 'CN=certctl conformance CA', key_algorithm: 'ECDSA-P256', ca_validity_days: 30, default_ttl_days: 7, max_ttl_days: 30 },
    grants: { ca: true },
    ca: { ensure, sign },
    unsupported: ['revoke'],
  };
}
