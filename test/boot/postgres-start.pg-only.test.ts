import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ApiClient } from '../support/http.js';
import { createDatabase } from '../support/postgres-cluster.js';
import { dropPostgres, POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { spawnServe, type ServeProcess } from '../support/spawn-kernel.js';

/**
 * With CERTCTL_DATABASE_URL the same code runs on PostgreSQL: two replicas starting
 * at once on an EMPTY database migrate it once and mint exactly one initial admin.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('start on PostgreSQL', () => {
  const dirs: string[] = [];
  const procs: ServeProcess[] = [];
  let url = '';
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    if (url) await dropPostgres(url);
    dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
  });

  it('two replicas on an empty database: one migration run, one admin, both serving', async () => {
    url = await createDatabase(inject('pgAdminUrl'), `boot_${crypto.randomBytes(5).toString('hex')}`);

    const env = (i: number) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `certctl-pg-boot-${i}-`));
      dirs.push(dir);
      return { CERTCTL_DATA_DIR: dir, CERTCTL_SERVER_PORT: '0', CERTCTL_DATABASE_URL: url, CERTCTL_CONFIG_ENCRYPTION_KEY: 'shared-replica-secret' };
    };
    procs.push(spawnServe(env(0)), spawnServe(env(1)));
    const ports = await Promise.all(procs.map((p) => p.ready));

    const keys = dirs.map((d) => path.join(d, 'initial-admin-key')).filter((f) => fs.existsSync(f));
    expect(keys).toHaveLength(1);
    const key = fs.readFileSync(keys[0], 'utf8').trim();

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const migrations = await client.query('select name from schema_migrations');
    expect(migrations.rows.map((r) => r.name)).toContain('001_kernel.sql');
    expect(new Set(migrations.rows.map((r) => r.name)).size).toBe(migrations.rowCount);
    const admins = await client.query(`select count(*)::int as n from api_key_roles where role_id = 'role-admin'`);
    expect(admins.rows[0].n).toBe(1);
    await client.end();

    for (const [i, port] of ports.entries()) {
      const ca = fs.readFileSync(path.join(dirs[i], 'tls', 'server.crt'), 'utf8');
      const api = new ApiClient(`https://localhost:${port}`, ca, key);
      const me = await api.get('/api/v1/auth/me');
      expect(me.status).toBe(200);
      const version = await api.get('/api/v1/version');
      expect(version.body.database).toBe('postgres');
      api.close();
    }
  }, 120_000);

  it('a replica with a different encryption key refuses to start', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pg-boot-bad-'));
    dirs.push(dir);
    const p = spawnServe({ CERTCTL_DATA_DIR: dir, CERTCTL_SERVER_PORT: '0', CERTCTL_DATABASE_URL: url, CERTCTL_CONFIG_ENCRYPTION_KEY: 'another-secret' });
    procs.push(p);
    expect(await p.exited).toBe(78);
    expect(p.stderr()).toMatch(/CERTCTL_CONFIG_ENCRYPTION_KEY does not match/);
  }, 60_000);
});
