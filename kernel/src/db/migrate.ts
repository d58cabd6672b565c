import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { LOCK_KEYS, type Database } from './database.js';

/** The repository's migrations/ folder: plain SQL, the same for PGlite and PostgreSQL. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

class SqlMigrationSource implements Knex.MigrationSource<string> {
  constructor(private readonly db: Database, private readonly dir: string) {}

  async getMigrations(): Promise<string[]> {
    return fs.readdirSync(this.dir).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  }

  getMigrationName(name: string): string {
    return name;
  }

  async getMigration(name: string): Promise<Knex.Migration> {
    const sql = fs.readFileSync(`${this.dir}/${name}`, 'utf8');
    return {
      up: async (trx: Knex) => this.db.execScript(sql, trx as Knex.Transaction),
      down: async () => {
        throw new Error('certctl migrations are forward-only');
      },
    };
  }
}

/**
 * Applies pending migrations. Safe to call on every start and from several
 * replicas at once: an advisory lock serialises them, and applied files are skipped.
 */
export async function migrate(db: Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  const applied = await db.withAdvisoryLock(LOCK_KEYS.migrations, async () => {
    const [, names] = (await db.knex.migrate.latest({
      migrationSource: new SqlMigrationSource(db, dir),
      tableName: 'schema_migrations',
    })) as [number, string[]];
    return names;
  });
  return applied ?? [];
}
