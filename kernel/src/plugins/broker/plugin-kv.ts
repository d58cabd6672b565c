import type { Knex } from 'knex';
import type { Json } from '@certctl/sdk';
import { KV_LIMITS, kvKeyProblem, kvPrefixProblem, kvValueProblem, type KvLimits } from '@certctl/sdk/policy';

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

/**
 * The `kv` capability: a JSON key-value store per plugin in plugin_kv. Every
 * query is scoped by plugin id, so one plugin never sees another's keys. A TTL
 * makes a key read as absent once it passes; expired rows are deleted when the
 * plugin writes and is near its key cap. Values travel as JSON text so that
 * PGlite and PostgreSQL return them the same way.
 */
export class PluginKv {
  private readonly limits: KvLimits;

  constructor(private readonly knex: Knex, limits: Partial<KvLimits> = {}) {
    this.limits = { ...KV_LIMITS, ...limits };
  }

  /** Keys, values and TTLs follow @certctl/sdk/policy's rules, which the SDK's test host applies too. */
  private check(problem: string | null): void {
    if (problem) throw new KvRefused(problem);
  }

  /** The stored value, or undefined when absent or expired. */
  async get(pluginId: string, key: string): Promise<Json | undefined> {
    this.check(kvKeyProblem(key, this.limits.maxKeyLength));
    const q = this.knex('plugin_kv').where({ plugin_id: pluginId, key }).first(this.knex.raw('value::text as value_text'));
    const row = (await live(q)) as { value_text: string } | undefined;
    return row ? (JSON.parse(row.value_text) as Json) : undefined;
  }

  async set(pluginId: string, key: string, value: Json, ttlSeconds?: number): Promise<void> {
    const text = JSON.stringify(value) as string | undefined;
    this.check(kvKeyProblem(key, this.limits.maxKeyLength) ?? kvValueProblem(text, ttlSeconds, this.limits));
    const exists = await live(this.knex('plugin_kv').where({ plugin_id: pluginId, key }).first('key'));
    if (!exists) await this.assertRoom(pluginId);
    const expires = ttlSeconds === undefined ? null : this.knex.raw(`now() + (? * interval '1 millisecond')`, [Math.round(ttlSeconds * 1000)]);
    await this.knex('plugin_kv')
      .insert({ plugin_id: pluginId, key, value: text, expires_at: expires })
      .onConflict(['plugin_id', 'key'])
      .merge({ value: text, expires_at: expires, updated_at: this.knex.raw('now()') });
  }

  async delete(pluginId: string, key: string): Promise<void> {
    this.check(kvKeyProblem(key, this.limits.maxKeyLength));
    await this.knex('plugin_kv').where({ plugin_id: pluginId, key }).delete();
  }

  /** Live keys, sorted, optionally only those starting with `prefix`. */
  async list(pluginId: string, prefix = ''): Promise<string[]> {
    this.check(kvPrefixProblem(prefix, this.limits.maxKeyLength));
    const q = this.knex('plugin_kv').where({ plugin_id: pluginId });
    // left() instead of LIKE: no escaping of % and _ in the prefix, and no collation surprises.
    if (prefix) q.whereRaw('left(key, ?) = ?', [prefix.length, prefix]);
    const rows = (await live(q.select('key').orderBy('key').limit(this.limits.maxKeysPerPlugin))) as { key: string }[];
    return rows.map((r) => r.key);
  }

  private async assertRoom(pluginId: string): Promise<void> {
    const count = async () => Number(((await live(this.knex('plugin_kv').where({ plugin_id: pluginId }).count({ n: '*' }).first())) as { n: string | number }).n);
    if ((await count()) < this.limits.maxKeysPerPlugin) return;
    await this.knex('plugin_kv').where({ plugin_id: pluginId }).whereRaw('expires_at <= now()').delete();
    if ((await count()) >= this.limits.maxKeysPerPlugin) throw new KvRefused(`the plugin's kv store is full (${this.limits.maxKeysPerPlugin} keys); delete keys or set TTLs`);
  }
}
