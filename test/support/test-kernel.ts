import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../kernel/src/config.js';
import { startKernel, type Kernel, type StartOptions } from '../../kernel/src/kernel.js';
import { ApiClient } from './http.js';
import { freshDatabase } from './test-db.js';

export interface TestKernel {
  kernel: Kernel;
  /** Client carrying the initial admin key. */
  api: ApiClient;
  adminKey: string;
  dataDir: string;
  /** Creates a key holding one built-in role (global scope) and returns it. */
  keyWithRole(role: string, opts?: { scope_type?: 'profile' | 'issuer'; scope_id?: string }): Promise<string>;
  stop(): Promise<void>;
}

/**
 * An in-process kernel on a fresh copy of the migrated template database,
 * listening on a random loopback port with a freshly generated certificate.
 * Rate limiting is effectively off unless the test sets CERTCTL_RATE_LIMIT_*.
 */
export async function startTestKernel(opts: { env?: Record<string, string>; start?: Omit<StartOptions, 'database'> } = {}): Promise<TestKernel> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-test-'));
  const { db, drop } = await freshDatabase();
  const config = loadConfig({
    CERTCTL_DATA_DIR: dataDir,
    CERTCTL_SERVER_PORT: '0',
    CERTCTL_SERVER_HOST: '127.0.0.1',
    CERTCTL_LOG_LEVEL: process.env.CERTCTL_TEST_LOG_LEVEL ?? 'silent',
    CERTCTL_RATE_LIMIT_RPS: '100000',
    CERTCTL_RATE_LIMIT_BURST: '100000',
    CERTCTL_CONFIG_ENCRYPTION_KEY: 'test-encryption-passphrase',
    ...opts.env,
  });
  const log = pino({ level: config.logLevel });
  const kernel = await startKernel(config, { log, ...opts.start, database: db });
  const ca = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
  const adminKey = kernel.initialAdminKey ?? '';
  const api = new ApiClient(kernel.url, ca, adminKey || null);
  return {
    kernel,
    api,
    adminKey,
    dataDir,
    async keyWithRole(role, scope) {
      const res = await api.post('/api/v1/auth/keys', { name: `test-${role}`, roles: [{ role_id: `role-${role}`, ...scope }] });
      if (res.status !== 201) throw new Error(`creating a ${role} key failed: ${res.status} ${res.text}`);
      return res.body.key as string;
    },
    async stop() {
      api.close();
      await kernel.close();
      await drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
