// A private, throw-away PostgreSQL cluster: initdb into a temp directory, started with
// pg_ctl on a free loopback port. Shared by the test harness (durability off, for speed)
// and the benchmarks (PostgreSQL's durable defaults, so commit-bound figures are honest).
// Plain JavaScript so the benchmarks need no build step. Needs Debian's postgresql package.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';

/** @returns {{ bin: string, version: string } | null} the newest installed server. */
export function findPgBin() {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return null;
  const versions = fs.readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? { bin: path.join(root, versions[0], 'bin'), version: versions[0] } : null;
}

/**
 * @param {{ durable?: boolean, synchronousCommit?: 'on' | 'off', maxConnections?: number }} [opts]
 *   durable=false (tests) turns fsync, synchronous_commit and full_page_writes off.
 * @returns {Promise<{ adminUrl: string, port: number, version: string, stop(): void }>}
 */
export async function startPgCluster({ durable = false, synchronousCommit, maxConnections = 300 } = {}) {
  const found = findPgBin();
  if (!found) throw new Error('PostgreSQL server binaries not found (apt-get install postgresql)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pg-'));
  const asRoot = process.getuid?.() === 0;
  // initdb refuses to run as root: run the server as the postgres system user then.
  const run = (/** @type {string} */ cmd, /** @type {string[]} */ args) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(found.bin, cmd), ...args]] : [path.join(found.bin, cmd), args];
    const res = spawnSync(/** @type {string} */ (file), /** @type {string[]} */ (argv), { encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`${cmd} failed: ${res.stderr || res.stdout}`);
  };
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  const data = path.join(dir, 'data');
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale', 'C']);
  const port = await freePort();
  const settings = ['listen_addresses=127.0.0.1', `max_connections=${maxConnections}`, 'shared_buffers=256MB',
    `synchronous_commit=${synchronousCommit ?? (durable ? 'on' : 'off')}`, ...(durable ? [] : ['fsync=off', 'full_page_writes=off'])];
  const opts = ['-p', String(port), '-k', dir, ...settings.flatMap((s) => ['-c', s])].join(' ');
  run('pg_ctl', ['-D', data, '-o', opts, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  return {
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    version: found.version,
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', durable ? 'fast' : 'immediate', '-w', 'stop']);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Runs `fn` with a connected client on the database at `url`, and disconnects.
 * @template T
 * @param {string} url
 * @param {(client: pg.Client) => Promise<T>} fn
 * @returns {Promise<T>}
 */
export async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** @returns {string} `url` with its database replaced by `name`. */
export function databaseUrl(/** @type {string} */ url, /** @type {string} */ name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Creates database `name` on the server at `adminUrl` (a copy of `template` when given).
 * @param {string} adminUrl
 * @param {string} name
 * @param {{ template?: string }} [opts]
 * @returns {Promise<string>} the new database's url.
 */
export async function createDatabase(adminUrl, name, { template } = {}) {
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`));
  return databaseUrl(adminUrl, name);
}

/** Drops database `name` on the server at `adminUrl`, ending its open sessions. */
export async function dropDatabase(/** @type {string} */ adminUrl, /** @type {string} */ name) {
  await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}
