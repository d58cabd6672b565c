import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The EST server in the test host: no CA is needed to refuse what is not EST. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { issuer_id: 'iss-conformance', auth: 'basic', username: 'est', csr_attributes: 'none', server_keygen: false, labels: {} },
    secrets: { password: 'conformance-password' },
    grants: { issuance: true, kv: true },
    protocol: { mount: '/.well-known/est', malformedPaths: ['/simpleenroll', '/simplereenroll', '/serverkeygen'] },
    issuance: {
      enroll: async () => ({ status: 'denied', reason: 'the conformance host issues nothing' }),
      caChain: async () => ({ chainPem: [] }),
    },
  };
}
