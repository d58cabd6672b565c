import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import ClientPGLite from 'knex-pglite';
import { StartupError } from '../errors.js';

// int8 (counts, sequence numbers) as JS numbers on both drivers; PGlite already does this.
pg.types.setTypeParser(20, (v) => Number(v));

export type Dialect = 'pglite' | 'postgres';

export interface Database {
  knex: Knex;
  dialect: Dialect;
  /**
   * Runs fn while holding a PostgreSQL session advisory lock on a dedicated
   * connection, so that only one kernel replica does the work at a time.
   * Returns undefined without running fn when `wait` is false and another
   * replica holds the lock. On PGlite (one process owns the database) it just runs fn.
   */
  withAdvisoryLock<T>(key: number, fn: () => Promise<T>, opts?: { wait?: boolean }): Promise<T | undefined>;
  /** Runs a multi-statement SQL script (migrations). */
  execScript(sql: string, trx?: Knex.Transaction): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string;
  /** PGlite data directory; undefined means in-memory. */
  pgliteDir?: string;
  /** A PGlite data dump to start from (tests load a migrated template this way). */
  pgliteLoadDataDir?: Blob;
  poolMax?: number;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl, opts.poolMax ?? 10);
  return openPglite(opts);
}

async function openPostgres(url: string, poolMax: number): Promise<Database> {
  const knex = knexFactory({
    client: 'pg',
    connection: url,
    pool: {
      min: 0,
      max: poolMax,
      // The kernel's queries are short OLTP statements. PostgreSQL's JIT compiles a
      // plan whose estimated cost passes jit_above_cost, which a table without
      // statistics yet (a fresh install, a bulk import) makes likely: ~20 ms of
      // compiling for a 0.1 ms read. Off for the kernel's own sessions only.
      afterCreate: (conn: pg.Client, done: (err: Error | null, conn: pg.Client) => void) => {
        conn.query('SET jit = off').then(() => done(null, conn), (err: Error) => done(err, conn));
      },
    },
    acquireConnectionTimeout: 30_000,
  });
  try {
    await knex.raw('select 1');
  } catch (err) {
    await knex.destroy().catch(() => {});
    throw new StartupError(`Cannot connect to PostgreSQL at CERTCTL_DATABASE_URL: ${(err as Error).message}`, { cause: err });
  }
  // Try-locks (scheduler loops) share one connection outside the pool, so holding
  // loop locks never eats into the pool the loops' own queries need. Waiting locks
  // (migrations) block their connection, so they take one from the pool instead.
  let lockClient: Promise<pg.Client> | null = null;
  const lockConnection = () =>
    (lockClient ??= (async () => {
      const c = new pg.Client({ connectionString: url });
      c.on('error', () => { lockClient = null; });
      await c.connect();
      return c;
    })().catch((err: unknown) => { lockClient = null; throw err; }));
  let lockQueue: Promise<unknown> = Promise.resolve();
  const onLockConnection = <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const run = lockQueue.then(async () => fn(await lockConnection()));
    lockQueue = run.catch(() => {});
    return run;
  };
  return {
    knex,
    dialect: 'postgres',
    async withAdvisoryLock(key, fn, { wait = true } = {}) {
      if (!wait) {
        const locked = await onLockConnection(async (c) => (await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [key])).rows[0].ok);
        if (!locked) return undefined;
        try {
          return await fn();
        } finally {
          await onLockConnection((c) => c.query('select pg_advisory_unlock($1)', [key])).catch(() => {});
        }
      }
      const conn = (await knex.client.acquireConnection()) as pg.Client;
      try {
        await conn.query('select pg_advisory_lock($1)', [key]);
        try {
          return await fn();
        } finally {
          await conn.query('select pg_advisory_unlock($1)', [key]).catch(() => {});
        }
      } finally {
        await knex.client.releaseConnection(conn);
      }
    },
    async execScript(sql, trx) {
      await (trx ?? knex).raw(sql);
    },
    async close() {
      await lockQueue;
      if (lockClient) await (await lockClient.catch(() => null))?.end().catch(() => {});
      await knex.destroy();
    },
  };
}

async function openPglite(opts: OpenOptions): Promise<Database> {
  if (opts.pgliteDir) fs.mkdirSync(path.dirname(opts.pgliteDir), { recursive: true });
  let pglite: PGlite;
  try {
    pglite = new PGlite({ dataDir: opts.pgliteDir, ...(opts.pgliteLoadDataDir ? { loadDataDir: opts.pgliteLoadDataDir } : {}) });
    await pglite.waitReady;
  } catch (err) {
    throw new StartupError(`Cannot open the embedded database in ${opts.pgliteDir ?? 'memory'}: ${(err as Error).message}`, { cause: err });
  }
  const knex = knexFactory({ client: ClientPGLite as unknown as typeof knexFactory.Client, connection: { pglite } as never });
  return {
    knex,
    dialect: 'pglite',
    async withAdvisoryLock(_key, fn) {
      return fn();
    },
    async execScript(sql) {
      // PGlite's query() speaks the extended protocol (one statement); exec() runs a script
      // on the same single connection, so it joins a transaction knex has open.
      await pglite.exec(sql);
    },
    close: () => knex.destroy(),
  };
}

/** Advisory lock keys: one per singleton activity, stable across releases. */
export const LOCK_KEYS = {
  migrations: 0x6365_0001,
  auditChain: 0x6365_0002,
  firstAdmin: 0x6365_0003,
  schedulerBase: 0x6365_1000,
} as const;
