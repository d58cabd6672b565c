import type { Knex } from 'knex';
import type { Json, PluginKind } from '@certctl/sdk';
import { splitSecrets, type ConfigCipher } from '../../secrets/config-cipher.js';
import type { PluginEntry } from '../catalog.js';
import { openConfig } from '../instances/instance-config.js';
import { toDetails } from '../../http/validation.js';
import { configDerivedHosts } from './config-grants.js';

/** Where the instances of each kind live (kinds without a table run without an instance). */
export const INSTANCE_TABLE: Partial<Record<PluginKind, string>> = { issuer: 'issuers', target: 'targets', notifier: 'notifiers', protocol: 'protocol_endpoints' };

/** `httpHosts`: host rules for the URLs the config names in `x-certctl-url` fields (config-grants.ts). */
export type InstanceConfig = { config: Record<string, Json>; httpHosts: string[] } | { problem: string };

/**
 * The config a plugin call gets: the instance's stored config validated against
 * the plugin's schema as it is now (defaults applied), with its secrets removed.
 * The plugin asks for secrets one by one through secrets.get. A missing,
 * disabled or foreign instance, or a config that no longer validates, is a
 * problem, never a call with half a config.
 */
export async function loadInstanceConfig(knex: Knex, cipher: ConfigCipher, entry: PluginEntry, instanceId: string | null): Promise<InstanceConfig> {
  if (instanceId === null) return { config: {}, httpHosts: [] };
  const table = entry.kind ? INSTANCE_TABLE[entry.kind] : undefined;
  if (!table) return { problem: `${entry.kind ?? 'this'} plugins have no instances; call them with instanceId null` };
  const row = (await knex(table).where({ id: instanceId }).first('id', 'type', 'config', 'encrypted_config', 'enabled')) as
    | { id: string; type: string; config: unknown; encrypted_config: string | null; enabled: boolean }
    | undefined;
  if (!row) return { problem: `${entry.kind} ${instanceId} does not exist` };
  if (row.type !== entry.id) return { problem: `${entry.kind} ${instanceId} is not an instance of plugin ${entry.id}` };
  if (!row.enabled) return { problem: `${entry.kind} ${instanceId} is disabled` };
  if (!entry.manifest || !entry.validateConfig) return { problem: `plugin ${entry.id} is disabled` };
  let full: Record<string, unknown>;
  try {
    full = structuredClone(openConfig(cipher, row).full);
  } catch {
    return { problem: `${entry.kind} ${instanceId}: stored secrets cannot be decrypted with the configured key` };
  }
  if (!entry.validateConfig(full)) {
    const why = toDetails(entry.validateConfig.errors).slice(0, 5).map((d) => `${d.path} ${d.message}`).join('; ');
    return { problem: `${entry.kind} ${instanceId}: stored config does not match the plugin's schema: ${why}` };
  }
  // Derived from the full config: a URL may itself be a secret (a Slack webhook URL is).
  return { config: splitSecrets(entry.manifest.configSchema, full).plain as Record<string, Json>, httpHosts: configDerivedHosts(entry.manifest.configSchema, full) };
}
