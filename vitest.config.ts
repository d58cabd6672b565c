import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vitest/config';

/**
 * Projects: unit tests beside the code; dashboard component tests (happy-dom); cross-module tests that need no
 * database (sandbox, runners, crypto pool) run once; and the database-backed suite
 * in test/ run twice, once on the embedded PGlite and once on a real PostgreSQL
 * cluster that test/support/global-setup.ts starts privately for the run.
 */
const NO_DATABASE = [
  'test/hostile/resource-exhaustion.test.ts', 'test/hostile/rogue-sandbox.test.ts', 'test/hostile/bad-values.test.ts',
  'test/hostile/sandbox-escape.test.ts', 'test/plugins/first-party-conformance.test.ts', 'test/plugins/runtime/worker-runner.test.ts', 'test/plugins/runtime/broker-ports.test.ts',
  'test/plugins/runtime/crypto-pool.test.ts', 'test/plugins/custom-ca.test.ts',
  'test/targets/ssh.test.ts', 'test/targets/jks.test.ts', 'test/targets/caddy.test.ts', 'test/targets/traefik.test.ts',
  'test/targets/envoy.test.ts', 'test/targets/postfix.test.ts', 'test/targets/dovecot.test.ts', 'test/targets/other-target-manifests.test.ts',
  'test/issuers/acme-client.test.ts', 'test/targets/nginx.test.ts', 'test/targets/apache.test.ts', 'test/targets/haproxy.test.ts', 'test/targets/target-manifests.test.ts',
];
const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    reporters: ['default'],
    maxWorkers: 2,
    projects: [
      { test: { ...shared, name: 'unit', include: ['kernel/src/**/*.test.ts', 'sdk/**/*.test.ts', 'agent/src/**/*.test.ts'] } },
      { test: { ...shared, name: 'node', include: NO_DATABASE } },
      // Dashboard component tests: Vue SFCs in a happy-dom document, no kernel.
      { plugins: [vue()], test: { ...shared, name: 'web', include: ['web/src/**/*.test.ts'], environment: 'happy-dom' } },
      {
        test: {
          ...shared, name: 'pglite', include: ['test/**/*.test.ts'], exclude: ['test/bench/**', 'test/**/*.pg-only.test.ts', ...NO_DATABASE],
          globalSetup: ['test/support/global-setup.ts'], env: { CERTCTL_TEST_DB: 'pglite' },
        },
      },
      {
        test: {
          ...shared, name: 'postgres', include: ['test/**/*.test.ts'], exclude: ['test/bench/**', 'test/**/*.pglite-only.test.ts', ...NO_DATABASE],
          globalSetup: ['test/support/global-setup.ts'], env: { CERTCTL_TEST_DB: 'postgres' },
        },
      },
    ],
  },
});
