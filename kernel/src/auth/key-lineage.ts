import type { Knex } from 'knex';

/*
 * Key lineage: api_keys.created_by holds the id of the key that minted a key ('system'
 * for the first admin). A key and every key it minted, directly or through keys those
 * minted, are one lineage: whoever holds an ancestor key could have minted the
 * descendant for themselves, so for the two-person rule they count as one person.
 * Keys minted by the same parent (siblings, cousins) are different people.
 */

/**
 * SQL for the actor ids in the lineage of one actor (bind the actor id twice): the
 * actor itself, the keys above it and the keys below it. Only keys are followed:
 * 'system' (which minted the first admin key) has no lineage, so what the system
 * requests any approver may decide. Usable as a subquery.
 */
export const KEY_LINEAGE_SQL = `WITH RECURSIVE up(id) AS (
    SELECT ?::text
    UNION
    SELECT p.id FROM up JOIN api_keys k ON k.id = up.id JOIN api_keys p ON p.id = k.created_by
  ), down(id) AS (
    SELECT id FROM api_keys WHERE id = ?::text
    UNION
    SELECT k.id FROM down JOIN api_keys k ON k.created_by = down.id
  )
  SELECT id FROM up UNION SELECT id FROM down`;

/** True when `a` and `b` are the same actor, or one key minted the other (directly or transitively). */
export async function sameKeyLineage(db: Knex | Knex.Transaction, a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  const res = (await db.raw(`SELECT 1 AS hit FROM (${KEY_LINEAGE_SQL}) lineage WHERE id = ? LIMIT 1`, [a, a, b])) as unknown;
  const rows = (res as { rows?: unknown[] }).rows ?? (res as unknown[]);
  return rows.length > 0;
}
