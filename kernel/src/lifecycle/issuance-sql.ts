import type { Knex } from 'knex';
import { rowsOf } from '../db/raw-rows.js';

/** Stands for the one varying value while the query is built (found again by identity); never a real id list. */
const SENTINEL: string[] = ['\u0000certctl-varying-binding\u0000'];

interface Compiled {
  sql: string;
  bindings: unknown[];
  /** Positions of the bindings that take the varying value. */
  varying: number[];
}

/**
 * A query-builder statement on the issuance hot path, compiled by knex once and
 * then run as raw SQL with fresh bindings: building and compiling a builder costs
 * ~40 us of the kernel thread per run, more than sending it. The statement is
 * named (`name`), so PostgreSQL parses and plans it once per connection too (a
 * name lives only as long as its connection, so it needs no version).
 * `build` gets the value that varies (a list of certificate ids, bound as one
 * array) and must produce the same SQL text whatever it is: only bindings that
 * are that very list are replaced.
 */
export function compiledOnce<Row>(name: string, build: (db: Knex | Knex.Transaction, value: string[]) => Knex.QueryBuilder) {
  // Compiled on first use (PGlite's knex client is PostgreSQL's: one text serves both).
  let c: Compiled | null = null;
  return async (db: Knex | Knex.Transaction, value: string[]): Promise<Row[]> => {
    if (!c) {
      const q = build(db, SENTINEL).toSQL();
      const bindings = [...(q.bindings as unknown[])];
      const varying = bindings.flatMap((b, i) => (b === SENTINEL ? [i] : []));
      if (!varying.length) throw new Error(`compiledOnce(${name}): the built query does not use its varying value as a binding`);
      c = { sql: q.sql, bindings, varying };
    }
    const bindings = [...c.bindings];
    for (const i of c.varying) bindings[i] = value;
    return rowsOf<Row>(await db.raw(c.sql, bindings as Knex.RawBinding[]).options({ name }));
  };
}
