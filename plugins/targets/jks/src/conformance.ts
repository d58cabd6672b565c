import type { ConformanceOptions } from '@certctl/sdk/testing';

/**
 * The Java keystore target's effect is a binary keystore that the real keytool
 * rewrites on disk, which the SDK's in-memory test host cannot hold: the suite
 * holds deploy to its shape and runs the refusal checks, and
 * test/targets/jks.test.ts runs the whole deploy/rollback cycle with the real
 * keytool and openssl through the agent's plugin host.
 */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { keystore_path: '/opt/app/conf/keystore.jks', keystore_type: 'JKS', alias: 'server', work_dir: '/var/lib/certctl/keystore-work', keytool_command: ['/usr/bin/keytool'], openssl_command: ['/usr/bin/openssl'] },
    secrets: { keystore_password: 'conformance-password' },
    target: { realServerOnly: 'test/targets/jks.test.ts (real keytool and openssl)' },
  };
}
