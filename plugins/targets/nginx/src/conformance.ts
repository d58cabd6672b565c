import type { ConformanceOptions } from '@certctl/sdk/testing';

/** An in-memory nginx host: the suite grants the configured files and commands as the agent would. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: {
      cert_path: '/etc/nginx/tls/site.crt',
      key_path: '/etc/nginx/tls/site.key',
      chain_path: '/etc/nginx/tls/chain.pem',
      validate_command: ['/usr/sbin/nginx', '-t'],
      reload_command: ['/usr/sbin/nginx', '-s', 'reload'],
      verify: { host: '127.0.0.1', port: 443, server_name: 'www.example.test' },
    },
    unsupported: ['verify'],
  };
}
