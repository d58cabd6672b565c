import type { ConformanceOptions } from '@certctl/sdk/testing';

/** An in-memory HAProxy host: the suite grants the configured file and commands as the agent would. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: {
      pem_path: '/etc/haproxy/certs/site.pem',
      validate_command: ['/usr/sbin/haproxy', '-c', '-f', '/etc/haproxy/haproxy.cfg'],
      reload_command: ['/usr/bin/systemctl', 'reload', 'haproxy'],
      verify: { host: '127.0.0.1', port: 443 },
    },
    unsupported: ['verify'],
  };
}
