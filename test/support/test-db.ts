import crypto from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';
import { inject } from 'vitest';
import { openDatabase, type Database } from '../../kernel/src/db/database.js';

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
  const name = `t_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE certctl_template`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function dropPostgres(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
