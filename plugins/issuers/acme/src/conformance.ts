import type { Json } from '@certctl/sdk';
import type { ConformanceOptions } from '@certctl/sdk/testing';
import { startPebble } from './pebble-harness.js';

/**
 * Issuer conformance against a real Pebble ACME CA (Debian packages pebble and
 * pebble-challtestsrv), stopped when the test process exits. The kv map is shared
 * with the test host, so the harness's http-01 responder answers from the plugin's
 * own kv, as the kernel route does. ACME has no CA-chain endpoint: getCaChain is
 * unsupported (the chain comes with each certificate).
 */
export default async function conformance(): Promise<Omit<ConformanceOptions, 'plugin'>> {
  const kv = new Map<string, Json>();
  const pebble = await startPebble({ keyAuthorization: (token) => kv.get(`http01:${token}`) as string | undefined });
  return {
    config: { directory_url: pebble.directoryUrl, email: 'conformance@certctl.test', ca_certificates_pem: pebble.tlsCaPem },
    grants: { kv: true },
    kv,
    unsupported: ['getCaChain'],
  };
}
