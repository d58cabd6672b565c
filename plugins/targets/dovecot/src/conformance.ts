import type { ConformanceOptions } from '@certctl/sdk/testing';

/** The shared target suite in the SDK's test host: files in memory, `doveconf -n` and `doveadm reload` answered by the kit. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { cert_path: '/etc/dovecot/private/mail.crt', key_path: '/etc/dovecot/private/mail.key', chain_path: '/etc/dovecot/private/chain.pem', validate_command: ['/usr/bin/doveconf', '-n'], reload_command: ['/usr/bin/doveadm', 'reload'] },
    // The endpoint check is the agent's (the config's verify block), not the plugin's.
    unsupported: ['verify'],
  };
}
