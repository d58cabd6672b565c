import crypto from 'node:crypto';
import { createDatabase, databaseUrl, dropDatabase, startPgCluster, withClient } from '../../support/postgres-cluster.js';
import { note } from './measure.js';

/**
 * A fresh database for one benchmark run: on the server at `adminUrl` when given, else on a
 * private cluster started for it with PostgreSQL's durable defaults (so commit-bound figures
 * look like a real deployment). `drop` removes the database, or the whole private cluster.
 * @param {{ adminUrl?: string, synchronousCommit?: 'on' | 'off' }} [opts]
 */
export async function benchPostgres({ adminUrl, synchronousCommit = 'on' } = {}) {
  let cluster = null;
  if (!adminUrl) {
    note(`starting a private PostgreSQL cluster (durable, synchronous_commit=${synchronousCommit})`);
    cluster = await startPgCluster({ durable: true, synchronousCommit, maxConnections: 100 });
    adminUrl = cluster.adminUrl;
  }
  const name = `certctl_bench_${crypto.randomBytes(4).toString('hex')}`;
  const shown = await withClient(adminUrl, async (c) => ({
    version: (await c.query('SHOW server_version')).rows[0].server_version,
    syncCommit: (await c.query('SHOW synchronous_commit')).rows[0].synchronous_commit,
  }));
  await createDatabase(adminUrl, name);
  return {
    url: databaseUrl(adminUrl, name),
    /** The server's port (its processes are found by it for CPU accounting). */
    port: Number(new URL(adminUrl).port),
    label: `PostgreSQL ${shown.version}`,
    settings: { synchronous_commit: shown.syncCommit },
    drop: async () => (cluster ? cluster.stop() : dropDatabase(adminUrl, name)),
  };
}
