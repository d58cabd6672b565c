import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The SCEP server in the test host: no CA is needed to refuse what is not SCEP. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { issuer_id: 'iss-conformance', allow_renewal: true, labels: {} },
    secrets: { challenge_password: 'conformance-challenge' },
    grants: { issuance: true, kv: true, events: true },
    protocol: { mount: '/scep', malformedPaths: ['', '/pkiclient.exe'] },
    issuance: {
      enroll: async () => ({ status: 'denied', reason: 'the conformance host issues nothing' }),
      caChain: async () => ({ chainPem: [] }),
    },
  };
}
