import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The shared target suite in the SDK's test host: certificate, key, chain and SDS files in memory. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return { config: { cert_dir: '/etc/envoy/certs', chain_filename: 'ca.pem', sds_config: { filename: 'sds.json', secret_name: 'server_cert' } }, unsupported: ['verify'] };
}
