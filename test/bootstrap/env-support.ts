import fs from 'node:fs';
import type { PGlite } from '@electric-sql/pglite';
import pino from 'pino';
import { inject } from 'vitest';
import { loadConfig } from '../../kernel/src/config.js';
import { openDatabase, type Database } from '../../kernel/src/db/database.js';
import { startKernel, type Kernel } from '../../kernel/src/kernel.js';
import { ApiClient } from '../support/http.js';
import { dropPostgres, freshPostgresUrl, TEST_DB } from '../support/test-db.js';

/**
 * A kernel that can be stopped and started again on the same database with other
 * environment variables (what an operator does when changing CERTCTL_*): PostgreSQL
 * keeps its database; PGlite is dumped before the stop and loaded by the next start.
 * Every log line is captured, so tests can check what was (not) logged.
 */
export class RestartableKernel {
  kernel: Kernel | null = null;
  api: ApiClient | null = null;
  adminKey = '';
  readonly logs: string[] = [];
  private pgUrl: string | undefined;
  private pgliteDump: Blob | undefined;

  constructor(readonly dataDir: string) {}

  /** Opens the database this kernel runs on (the next start's, when a restart is pending). */
  private async openDb(): Promise<Database> {
    if (TEST_DB === 'postgres') {
      this.pgUrl ??= await freshPostgresUrl();
      return openDatabase({ databaseUrl: this.pgUrl, poolMax: 10 });
    }
    return openDatabase({ pgliteLoadDataDir: this.pgliteDump ?? new Blob([fs.readFileSync(inject('pgliteTemplate'))]) });
  }

  baseEnv(): Record<string, string> {
    return {
      CERTCTL_DATA_DIR: this.dataDir, CERTCTL_SERVER_PORT: '0', CERTCTL_SERVER_HOST: '127.0.0.1', CERTCTL_LOG_LEVEL: 'debug',
      CERTCTL_RATE_LIMIT_RPS: '100000', CERTCTL_RATE_LIMIT_BURST: '100000', CERTCTL_CONFIG_ENCRYPTION_KEY: 'env-bootstrap-test-key',
    };
  }

  async start(env: Record<string, string>): Promise<Kernel> {
    const config = loadConfig({ ...this.baseEnv(), ...env });
    const log = pino({ level: 'debug' }, { write: (line: string) => { this.logs.push(line); } });
    const db = await this.openDb();
    const kernel = await startKernel(config, { log, database: db });
    this.kernel = kernel;
    if (kernel.initialAdminKey) this.adminKey = kernel.initialAdminKey;
    this.api = new ApiClient(kernel.url, fs.readFileSync(`${this.dataDir}/tls/server.crt`, 'utf8'), this.adminKey);
    return kernel;
  }

  /** Starts on the database and expects the start to be refused; returns the error. */
  async startRefused(env: Record<string, string>): Promise<Error> {
    const db = await this.openDb();
    try {
      await startKernel(loadConfig({ ...this.baseEnv(), ...env }), { log: pino({ level: 'silent' }), database: db });
    } catch (err) {
      return err as Error;
    }
    throw new Error('the kernel started');
  }

  async stop(): Promise<void> {
    if (!this.kernel) return;
    if (this.kernel.db.dialect === 'pglite') {
      const pglite = (this.kernel.db.knex.client as unknown as { pglite: PGlite }).pglite;
      this.pgliteDump = (await pglite.dumpDataDir('none')) as Blob;
    }
    this.api?.close();
    await this.kernel.close();
    this.kernel = null;
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.pgUrl) await dropPostgres(this.pgUrl);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
