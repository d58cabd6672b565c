import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The ACME server in the test host: unknown paths and non-JWS bodies are ACME problems, never throws. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { issuer_id: 'iss-conformance', mode: 'trust_authenticated' },
    grants: { issuance: true, kv: true },
    protocol: { mount: '/acme', malformedPaths: ['/new-account', '/new-order', '/revoke-cert', '/order/abc/finalize'] },
    issuance: {
      enroll: async () => ({ status: 'denied', reason: 'the conformance host issues nothing' }),
      caChain: async () => ({ chainPem: [] }),
    },
  };
}
