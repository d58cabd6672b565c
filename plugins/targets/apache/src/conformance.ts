import type { ConformanceOptions } from '@certctl/sdk/testing';

/** An in-memory apache host: the suite grants the configured files and commands as the agent would. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: {
      cert_path: '/etc/apache/tls/site.crt',
      key_path: '/etc/apache/tls/site.key',
      chain_path: '/etc/apache/tls/chain.pem',
      validate_command: ['/usr/sbin/apachectl', 'configtest'],
      reload_command: ['/usr/sbin/apachectl', 'graceful'],
      verify: { host: '127.0.0.1', port: 443, server_name: 'www.example.test' },
    },
    unsupported: ['verify'],
  };
}
