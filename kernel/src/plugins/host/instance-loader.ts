import type { Knex } from 'knex';
import type { Json } from '@certctl/sdk';
import { splitSecrets, type ConfigCipher } from '../../secrets/config-cipher.js';
import type { PluginEntry } from '../catalog.js';
import { checkStoredConfig, openConfig } from '../instances/instance-config.js';
import { instanceTable } from '../instances/instance-tables.js';
import { configDerivedHosts } from './config-grants.js';

/** `httpHosts`: host rules for the URLs the config names in `x-certctl-url` fields (config-grants.ts). */
export type InstanceConfig = { config: Record<string, Json>; httpHosts: string[] } | { problem: string };

/** The columns of an instance row the host needs (a caller that hands the row in reads exactly these). */
export const INSTANCE_COLUMNS = ['id', 'type', 'config', 'encrypted_config', 'enabled'] as const;

export type InstanceRow = { id: string; type: string; config: unknown; encrypted_config: string | null; enabled: boolean };

/** What a stored row produced, kept while the row and the plugin's catalog entry stay the same. */
interface Opened {
  entry: PluginEntry;
  stamp: string;
  result: InstanceConfig;
}

/** Instances whose opened config is kept (by far more than any deployment calls in a burst). */
const CACHE_MAX = 1000;

/**
 * Remembers opened instance configs so a busy instance (an issuer signing
 * thousands of certificates) is not decrypted, cloned and schema-checked on
 * every call. The row is still read on every call (or handed over by a caller
 * that has just read it), so a change made anywhere (another replica included)
 * applies to the next call. Only the clear part is kept, never a decrypted
 * secret. The cached result is used
 * only when the row's type, enabled flag, clear config and sealed config are
 * byte for byte what produced it, and the plugin's catalog entry (its schema) is
 * the same object. Nothing cached is ever handed out: callers get a fresh copy.
 */
export class InstanceConfigLoader {
  private readonly opened = new Map<string, Opened>();

  constructor(private readonly knex: Knex, private readonly cipher: ConfigCipher) {}

  async load(entry: PluginEntry, instanceId: string | null, given?: InstanceRow): Promise<InstanceConfig> {
    if (instanceId === null) return { config: {}, httpHosts: [] };
    const table = instanceTable(entry.kind);
    if (!table) return { problem: `${entry.kind ?? 'this'} plugins have no instances; call them with instanceId null` };
    const row = given?.id === instanceId ? given
      : ((await this.knex(table).where({ id: instanceId }).first(...INSTANCE_COLUMNS)) as InstanceRow | undefined);
    const key = `${table}\0${instanceId}`;
    if (!row) {
      this.opened.delete(key);
      return { problem: `${entry.kind} ${instanceId} does not exist` };
    }
    const stamp = `${row.type}\0${row.enabled}\0${typeof row.config === 'string' ? row.config : JSON.stringify(row.config)}\0${row.encrypted_config ?? ''}`;
    const hit = this.opened.get(key);
    if (hit && hit.entry === entry && hit.stamp === stamp) return copyOf(hit.result);
    const result = openInstance(this.cipher, entry, row);
    this.opened.delete(key);
    this.opened.set(key, { entry, stamp, result });
    if (this.opened.size > CACHE_MAX) this.opened.delete(this.opened.keys().next().value!);
    return copyOf(result);
  }
}

const copyOf = (r: InstanceConfig): InstanceConfig => ('problem' in r ? { problem: r.problem } : { config: structuredClone(r.config), httpHosts: [...r.httpHosts] });

/**
 * The config a plugin call gets: the instance's stored config validated against
 * the plugin's schema as it is now (defaults applied), with its secrets removed.
 * The plugin asks for secrets one by one through secrets.get. A missing,
 * disabled or foreign instance, or a config that no longer validates, is a
 * problem, never a call with half a config.
 */
function openInstance(cipher: ConfigCipher, entry: PluginEntry, row: InstanceRow): InstanceConfig {
  const instanceId = row.id;
  if (row.type !== entry.id) return { problem: `${entry.kind} ${instanceId} is not an instance of plugin ${entry.id}` };
  if (!row.enabled) return { problem: `${entry.kind} ${instanceId} is disabled` };
  if (!entry.manifest || !entry.validateConfig) return { problem: `plugin ${entry.id} is disabled` };
  let stored: Record<string, unknown>;
  try {
    stored = openConfig(cipher, row).full;
  } catch {
    return { problem: `${entry.kind} ${instanceId}: stored secrets cannot be decrypted with the configured key` };
  }
  const checked = checkStoredConfig(entry.validateConfig, stored);
  if ('problem' in checked) return { problem: `${entry.kind} ${instanceId}: stored config does not match the plugin's schema: ${checked.problem}` };
  // Derived from what is stored (clear config and secrets: a Slack webhook URL is a
  // secret), not from the checked copy, which validation filled with the schema's
  // defaults: only a URL the operator named may widen the plugin's http grant.
  return { config: splitSecrets(entry.manifest.configSchema, checked.config).plain as Record<string, Json>, httpHosts: configDerivedHosts(entry.manifest.configSchema, stored) };
}
