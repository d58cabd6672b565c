import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../kernel/src/db/database.js';
import { migrate } from '../../kernel/src/db/migrate.js';
import { createDatabase, dropDatabase, findPgBin, startPgCluster } from './postgres-cluster.js';

/**
 * Prepares the database template the suite copies for every test kernel:
 * - pglite: a migrated in-memory PGlite, dumped to a tarball (loading it takes
 *   ~0.5 s where a fresh initdb takes ~3 s);
 * - postgres: a private cluster with a migrated `certctl_template` database
 *   (CREATE DATABASE ... TEMPLATE is a fast file copy).
 * CERTCTL_TEST_DATABASE_URL points at an existing server instead of starting one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const kind = project.config.env?.CERTCTL_TEST_DB ?? 'pglite';
  if (kind === 'pglite') {
    const db = await openDatabase({});
    await migrate(db);
    const pglite = (db.knex.client as unknown as { pglite: PGlite }).pglite;
    const dump = await pglite.dumpDataDir('none');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pglite-')), 'template.tar');
    fs.writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
    await db.close();
    project.provide('pgliteTemplate', file);
    return async () => fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }

  let cluster: Awaited<ReturnType<typeof startPgCluster>> | null = null;
  let adminUrl = process.env.CERTCTL_TEST_DATABASE_URL;
  if (!adminUrl) {
    if (!findPgBin()) {
      if (process.env.CERTCTL_TEST_REQUIRE_POSTGRES) throw new Error('CERTCTL_TEST_REQUIRE_POSTGRES is set but PostgreSQL is not installed');
      process.stderr.write('\n*** PostgreSQL is not installed: the postgres test project is skipped (apt-get install postgresql, or see .ci/run) ***\n\n');
      project.provide('pgAdminUrl', '');
      return async () => {};
    }
    cluster = await startPgCluster();
    adminUrl = cluster.adminUrl;
  }
  await dropDatabase(adminUrl, 'certctl_template');
  const db = await openDatabase({ databaseUrl: await createDatabase(adminUrl, 'certctl_template') });
  await migrate(db);
  await db.close();
  project.provide('pgAdminUrl', adminUrl);
  return async () => cluster?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplate: string;
    pgAdminUrl: string;
  }
}
