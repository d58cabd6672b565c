import { defineConfig } from 'vitest/config';

/**
 * Three projects: unit tests beside the code, and the cross-module suite in test/
 * run twice, once on the embedded PGlite and once on a real PostgreSQL cluster
 * that test/support/global-setup.ts starts privately for the run.
 */
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
      { test: { ...shared, name: 'unit', include: ['kernel/src/**/*.test.ts', 'sdk/**/*.test.ts'] } },
      {
        test: {
          ...shared, name: 'pglite', include: ['test/**/*.test.ts'], exclude: ['test/bench/**', 'test/**/*.pg-only.test.ts'],
          globalSetup: ['test/support/global-setup.ts'], env: { CERTCTL_TEST_DB: 'pglite' },
        },
      },
      {
        test: {
          ...shared, name: 'postgres', include: ['test/**/*.test.ts'], exclude: ['test/bench/**', 'test/**/*.pglite-only.test.ts'],
          globalSetup: ['test/support/global-setup.ts'], env: { CERTCTL_TEST_DB: 'postgres' },
        },
      },
    ],
  },
});
