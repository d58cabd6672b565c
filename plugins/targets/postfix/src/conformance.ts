import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The shared target suite in the SDK's test host: files in memory, `postfix check` and `postfix reload` answered by the kit. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { cert_path: '/etc/postfix/tls/mail.crt', key_path: '/etc/postfix/tls/mail.key', validate_command: ['/usr/sbin/postfix', 'check'], reload_command: ['/usr/sbin/postfix', 'reload'] },
    // The endpoint check is the agent's (the config's verify block), not the plugin's.
    unsupported: ['verify'],
  };
}
