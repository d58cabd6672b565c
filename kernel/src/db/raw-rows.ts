/** The rows of a `knex.raw` result: node-postgres and PGlite answer `{ rows }`; an array passes through. */
export const rowsOf = <T>(res: unknown): T[] => ((res as { rows?: T[] }).rows ?? (res as T[]));
