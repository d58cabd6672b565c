import crypto from 'node:crypto';
import fs from 'node:fs';
import { inject } from 'vitest';
import { openDatabase, type Database } from '../../kernel/src/db/database.js';
import { createDatabase, dropDatabase } from './postgres-cluster.js';

export type TestDbKind = 'pglite' | 'postgres';
export const TEST_DB: TestDbKind = process.env.CERTCTL_TEST_DB === 'postgres' ? 'postgres' : 'pglite';

/** True when this project is the postgres one but no server is available (dev machine without PostgreSQL). */
export const POSTGRES_UNAVAILABLE = TEST_DB === 'postgres' && !inject('pgAdminUrl');

/**
 * A fresh, migrated database for one test kernel: a PGlite loaded from the
 * template dump, or a new PostgreSQL database copied from certctl_template.
 * Returns the url too (for postgres) so a second process can share it.
 */
export async function freshDatabase(): Promise<{ db: Database; url?: string; drop(): Promise<void> }> {
  if (TEST_DB === 'pglite') {
    const blob = new Blob([fs.readFileSync(inject('pgliteTemplate'))]);
    const db = await openDatabase({ pgliteLoadDataDir: blob });
    return { db, drop: async () => {} };
  }
  const url = await freshPostgresUrl();
  const db = await openDatabase({ databaseUrl: url, poolMax: 10 });
  return { db, url, drop: () => dropPostgres(url) };
}

export async function freshPostgresUrl(): Promise<string> {
  const adminUrl = inject('pgAdminUrl');
  if (!adminUrl) throw new Error('PostgreSQL is not available for this test run');
  return createDatabase(adminUrl, `t_${crypto.randomBytes(6).toString('hex')}`, { template: 'certctl_template' });
}

export async function dropPostgres(url: string): Promise<void> {
  await dropDatabase(inject('pgAdminUrl'), new URL(url).pathname.slice(1));
}
