import type { Knex } from 'knex';
import { deriveKeyInfo } from '@certctl/sdk/policy';
import type { ConfigCipher } from '../../secrets/config-cipher.js';
import { INSTANCE_TABLES } from '../instances/instance-tables.js';

/** The tables whose rows are plugin instances; a row's `type` is its plugin's id. */
const TABLES = Object.values(INSTANCE_TABLES).map((s) => s.table);
/** One statement over all of them: the row of this id that belongs to this plugin. */
const SECRET_ROW = TABLES.map((t) => `select encrypted_config from ${t} where id = ? and type = ?`).join(' union all ');

type Row = { encrypted_config: string | null };

const PATH = /^[A-Za-z0-9_-]{1,100}(\.[A-Za-z0-9_-]{1,100}){0,9}$/;

/**
 * secrets.get for a plugin call: one secret of the call's own instance, by dot
 * path. The row must belong to the calling plugin (its `type`), so a plugin
 * naming another instance's id gets nothing. Values are decrypted here, per
 * call, and never cached in the kernel.
 */
export async function readInstanceSecret(knex: Knex, cipher: ConfigCipher, pluginId: string, instanceId: string | null, path: string): Promise<string | undefined> {
  if (typeof path !== 'string' || !PATH.test(path)) throw new TypeError('secrets.get expects a dot path such as "api_token" or "auth.password"');
  if (!instanceId) return undefined;
  const res = (await knex.raw(SECRET_ROW, TABLES.flatMap(() => [instanceId, pluginId]))) as { rows?: Row[] } | Row[];
  const row = ((res as { rows?: Row[] }).rows ?? (res as Row[]))[0];
  if (!row) return undefined;
  let value: unknown = cipher.openJson(row.encrypted_config);
  for (const part of path.split('.')) {
    if (!value || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * secrets.deriveKey for a plugin call: base64url of 32 bytes derived from the
 * kernel's config-sealing key, bound to the calling plugin, the call's instance
 * and the label (@certctl/sdk/policy deriveKeyInfo, which the SDK's test host
 * uses too). A plugin cannot name another plugin or instance (both come from
 * the call), so it only ever gets its own keys; nothing is stored. A label the
 * rules refuse comes back as the problem (the broker denies the call with it).
 */
export function deriveInstanceKey(cipher: ConfigCipher, pluginId: string, instanceId: string | null, label: unknown): { key: string } | { problem: string } {
  const bound = deriveKeyInfo(pluginId, instanceId, label);
  return 'problem' in bound ? bound : { key: cipher.deriveKey(bound.info).toString('base64url') };
}
