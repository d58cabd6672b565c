import type { Knex } from 'knex';
import type { Json } from '@certctl/sdk';
import { KV_LIMITS, kvIncrementProblem, kvKeyProblem, kvPrefixProblem, kvValueProblem, type KvLimits } from '@certctl/sdk/policy';
import { rowsOf } from '../../db/raw-rows.js';

export type { KvLimits };

/** A request the store refuses (bad key, too big, full): the broker reports it as capability_denied. */
export class KvRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvRefused';
  }
}

/** Rows whose TTL has not passed (database time, so replicas agree). */
const live = <Q extends Knex.QueryBuilder>(qb: Q): Q => qb.where((w) => w.whereNull('expires_at').orWhereRaw('expires_at > now()')) as Q;
const LIVE_SQL = '(expires_at IS NULL OR expires_at > now())';

/**
 * Below this share of its quota a plugin's key count is taken from a recent count
 * plus the keys written since (COUNT_FRESH_MS), instead of counting on every
 * write: counting a store of a million keys per nonce would cost more than the
 * request. Near the quota every new key is counted and written under a
 * per-plugin transaction lock, so concurrent writes cannot pass it together; a
 * plugin can overshoot only if other kernels add more than the remaining share
 * within COUNT_FRESH_MS.
 */
const ESTIMATE_BELOW = 0.9;
const COUNT_FRESH_MS = 2000;

/**
 * The `kv` capability: a JSON key-value store per plugin in plugin_kv. Every
 * query is scoped by plugin id, so one plugin never sees another's keys. A TTL
 * makes a key read as absent once it passes; expired rows are deleted by the
 * sweep loop (plugin-kv-sweep.ts) and, for a plugin at its quota, on its next
 * write. take and increment are single statements, so they are atomic across
 * kernels sharing the database. Values travel as JSON text so that PGlite and
 * PostgreSQL return them the same way.
 *
 * The key quota comes with each write (the broker derives it from the plugin's
 * grant, `kv: true` or `kv: { maxKeys }`); `limits.maxKeysPerPlugin` is the
 * quota of a plain `kv: true`.
 */
export class PluginKv {
  private readonly limits: KvLimits;
  private readonly counts = new Map<string, { n: number; at: number }>();

  constructor(private readonly knex: Knex, limits: Partial<KvLimits> = {}) {
    this.limits = { ...KV_LIMITS, ...limits };
  }

  /** Keys, values and TTLs follow @certctl/sdk/policy's rules, which the SDK's test host applies too. */
  private check(problem: string | null): void {
    if (problem) throw new KvRefused(problem);
  }

  /** The quota of a plain `kv: true` grant. */
  get defaultMaxKeys(): number {
    return this.limits.maxKeysPerPlugin;
  }

  /** The stored value, or undefined when absent or expired. */
  async get(pluginId: string, key: string): Promise<Json | undefined> {
    this.check(kvKeyProblem(key, this.limits.maxKeyLength));
    const q = this.knex('plugin_kv').where({ plugin_id: pluginId, key }).first(this.knex.raw('value::text as value_text'));
    const row = (await live(q)) as { value_text: string } | undefined;
    return row ? (JSON.parse(row.value_text) as Json) : undefined;
  }

  async set(pluginId: string, key: string, value: Json, ttlSeconds?: number, maxKeys = this.limits.maxKeysPerPlugin): Promise<void> {
    const text = JSON.stringify(value) as string | undefined;
    this.check(kvKeyProblem(key, this.limits.maxKeyLength) ?? kvValueProblem(text, ttlSeconds, this.limits));
    await this.withRoom(pluginId, key, maxKeys, async (db) => {
      const expires = ttlSeconds === undefined ? null : db.raw(`now() + (? * interval '1 millisecond')`, [Math.round(ttlSeconds * 1000)]);
      await db('plugin_kv')
        .insert({ plugin_id: pluginId, key, value: text, expires_at: expires })
        .onConflict(['plugin_id', 'key'])
        .merge({ value: text, expires_at: expires, updated_at: db.raw('now()') });
    });
  }

  async delete(pluginId: string, key: string): Promise<void> {
    this.check(kvKeyProblem(key, this.limits.maxKeyLength));
    await this.knex('plugin_kv').where({ plugin_id: pluginId, key }).delete();
  }

  /** Deletes the key and returns its value if it was live: one statement, so one caller wins a race. */
  async take(pluginId: string, key: string): Promise<Json | undefined> {
    this.check(kvKeyProblem(key, this.limits.maxKeyLength));
    const rows = rowsOf<{ value_text: string; live: boolean }>(await this.knex.raw(
      `DELETE FROM plugin_kv WHERE plugin_id = ? AND key = ? RETURNING value::text AS value_text, ${LIVE_SQL} AS live`,
      [pluginId, key],
    ));
    const row = rows[0];
    return row?.live ? (JSON.parse(row.value_text) as Json) : undefined;
  }

  /**
   * Adds `by` to a counter in one upsert and returns the new value. A live
   * number keeps its expiry (fixed windows); anything else starts over at `by`
   * with the given TTL.
   */
  async increment(pluginId: string, key: string, by = 1, ttlSeconds?: number, maxKeys = this.limits.maxKeysPerPlugin): Promise<number> {
    this.check(kvKeyProblem(key, this.limits.maxKeyLength) ?? kvIncrementProblem(by) ?? kvValueProblem(String(by), ttlSeconds, this.limits));
    const continues = `(plugin_kv.expires_at IS NULL OR plugin_kv.expires_at > now()) AND jsonb_typeof(plugin_kv.value) = 'number'`;
    const expires = ttlSeconds === undefined ? 'NULL' : `now() + (${Math.round(ttlSeconds * 1000)} * interval '1 millisecond')`;
    const rows = await this.withRoom(pluginId, key, maxKeys, async (db) => rowsOf<{ value_text: string }>(await db.raw(
      `INSERT INTO plugin_kv (plugin_id, key, value, expires_at) VALUES (?, ?, to_jsonb(?::bigint), ${expires})
       ON CONFLICT (plugin_id, key) DO UPDATE SET
         value = CASE WHEN ${continues} THEN to_jsonb((plugin_kv.value::text)::numeric + ?::bigint) ELSE excluded.value END,
         expires_at = CASE WHEN ${continues} THEN plugin_kv.expires_at ELSE excluded.expires_at END,
         updated_at = now()
       RETURNING value::text AS value_text`,
      [pluginId, key, by, by],
    )));
    return Number(JSON.parse(rows[0].value_text));
  }

  /** Live keys, sorted, optionally only those starting with `prefix` (at most the default quota of them). */
  async list(pluginId: string, prefix = ''): Promise<string[]> {
    this.check(kvPrefixProblem(prefix, this.limits.maxKeyLength));
    const q = this.knex('plugin_kv').where({ plugin_id: pluginId });
    // left() instead of LIKE: no escaping of % and _ in the prefix, and no collation surprises.
    if (prefix) q.whereRaw('left(key, ?) = ?', [prefix.length, prefix]);
    const rows = (await live(q.select('key').orderBy('key').limit(this.limits.maxKeysPerPlugin))) as { key: string }[];
    return rows.map((r) => r.key);
  }

  /** Deletes up to `batch` expired rows of any plugin; the sweep loop calls this until it returns less. */
  async sweepExpired(batch: number): Promise<number> {
    return rowsOf(await this.knex.raw(
      `DELETE FROM plugin_kv WHERE (plugin_id, key) IN (SELECT plugin_id, key FROM plugin_kv WHERE expires_at <= now() LIMIT ?) RETURNING 1 AS one`,
      [batch],
    )).length;
  }

  /**
   * Runs a write that may add `key`, refusing it when the plugin is at its quota
   * (see ESTIMATE_BELOW): far from the quota directly, near it inside a
   * transaction holding the plugin's advisory lock, after an exact count.
   */
  private async withRoom<T>(pluginId: string, key: string, maxKeys: number, write: (db: Knex | Knex.Transaction) => Promise<T>): Promise<T> {
    const seen = this.counts.get(pluginId);
    if (seen && Date.now() - seen.at < COUNT_FRESH_MS && seen.n + 1 < maxKeys * ESTIMATE_BELOW) {
      seen.n++; // counted as new even when it overwrites: the estimate only errs high
      return write(this.knex);
    }
    return this.knex.transaction(async (trx) => {
      await trx.raw(`SELECT pg_advisory_xact_lock(hashtext('plugin_kv:' || ?))`, [pluginId]);
      const count = async () => {
        const rows = rowsOf<{ n: string | number }>(await trx.raw(
          `SELECT count(*) AS n FROM (SELECT 1 FROM plugin_kv WHERE plugin_id = ? AND ${LIVE_SQL} LIMIT ?) AS k`,
          [pluginId, maxKeys],
        ));
        return Number(rows[0].n);
      };
      const exists = await live(trx('plugin_kv').where({ plugin_id: pluginId, key }).first('key'));
      let n = await count();
      if (!exists && n >= maxKeys) {
        await trx('plugin_kv').where({ plugin_id: pluginId }).whereRaw('expires_at <= now()').delete();
        n = await count();
        if (n >= maxKeys) throw new KvRefused(`the plugin's kv store is full (${maxKeys} keys); delete keys or set TTLs`);
      }
      const result = await write(trx);
      this.counts.set(pluginId, { n: exists ? n : n + 1, at: Date.now() });
      return result;
    });
  }
}
