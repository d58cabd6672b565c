import type { ConformanceOptions } from '@certctl/sdk/testing';

/**
 * The SSH target's effect is files on a remote host, reached over the network:
 * in the SDK's in-memory host the suite holds deploy to its shape (here: a
 * refused connection answered as `failed`, not thrown) and runs the refusal
 * checks; test/targets/ssh.test.ts runs deploy, idempotency, reload, rollback and
 * host-key pinning against a real SSH server with OpenSSH's sftp-server.
 */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: {
      host: '127.0.0.1', port: 1, user: 'deploy', auth_method: 'key', host_key_fingerprint: `SHA256:${'A'.repeat(43)}`,
      cert_path: '/etc/nginx/tls/site.crt', key_path: '/etc/nginx/tls/site.key', reload_command: ['/usr/sbin/nginx', '-s', 'reload'], timeout_seconds: 2,
    },
    secrets: { private_key: 'not used: the connection is refused first' },
    target: { realServerOnly: 'test/targets/ssh.test.ts (a real SSH server with OpenSSH sftp-server)' },
  };
}
