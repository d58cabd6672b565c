import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The shared target suite in file mode (test/targets/caddy.test.ts covers api mode against a loopback admin API). */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { mode: 'file', cert_path: '/etc/caddy/certs/site.crt', key_path: '/etc/caddy/certs/site.key', reload_command: ['/usr/bin/caddy', 'reload', '--config', '/etc/caddy/Caddyfile'] },
  };
}
