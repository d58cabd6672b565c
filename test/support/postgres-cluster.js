// A private, throw-away PostgreSQL cluster: initdb into a temp directory, started with
// pg_ctl on a free loopback port. Shared by the test harness (durability off, for speed)
// and the benchmarks (PostgreSQL's durable defaults, so commit-bound figures are honest).
// Plain JavaScript so the benchmarks need no build step. Needs Debian's postgresql package.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** @returns {{ bin: string, version: string } | null} the newest installed server. */
export function findPgBin() {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return null;
  const versions = fs.readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? { bin: path.join(root, versions[0], 'bin'), version: versions[0] } : null;
}

/** @returns {Promise<number>} a free loopback port. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
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
