import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The shared target suite in the SDK's test host: files in memory, Traefik watching them (no commands). */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return { config: { cert_dir: '/etc/traefik/certs', cert_filename: 'site.pem', key_filename: 'site.key', dynamic_config: 'yaml' }, unsupported: ['verify'] };
}
