import type { ValidateFunction } from 'ajv';
import type { JsonSchemaObject } from '@certctl/sdk';
import { appError } from '../../errors.js';
import { toDetails } from '../../http/validation.js';
import { mergeSecrets, secretPaths, splitSecrets, type ConfigCipher } from '../../secrets/config-cipher.js';

type Config = Record<string, unknown>;

const isPlainObject = (v: unknown): v is Config => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

/**
 * RFC 7396 JSON merge patch: given members replace, objects merge member by
 * member, `null` removes. This is how PUT changes a config: omitted fields (and
 * omitted secrets) keep their stored values, `null` clears one.
 */
export function mergePatch(target: Config, patch: Config): Config {
  const out: Config = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (isPlainObject(value)) out[key] = mergePatch(isPlainObject(out[key]) ? out[key] : {}, value);
    else out[key] = value;
  }
  return out;
}

/**
 * Validates a full config against the plugin's compiled schema (applying its
 * defaults to a copy) and returns the copy. Error details name config paths
 * (`/config/...`) and never carry values, so a rejected secret is not echoed.
 */
export function validateConfig(validate: ValidateFunction, config: Config): Config {
  const copy = structuredClone(config);
  if (!validate(copy)) {
    const details = toDetails(validate.errors).map((d) => ({ ...d, path: `/config${d.path === '/' ? '' : d.path}` }));
    throw appError('VALIDATION_FAILED', `config failed the plugin's schema: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`, { details });
  }
  return copy;
}

/** A non-throwing check for stored instances: the validated copy (defaults applied), or a short reason. */
export function checkStoredConfig(validate: ValidateFunction, config: Config): { config: Config } | { problem: string } {
  const copy = structuredClone(config);
  if (validate(copy)) return { config: copy };
  return { problem: toDetails(validate.errors).slice(0, 5).map((d) => `${d.path} ${d.message}`).join('; ') };
}

/** checkStoredConfig's reason, or null when valid. */
export function configProblem(validate: ValidateFunction, config: Config): string | null {
  const checked = checkStoredConfig(validate, config);
  return 'problem' in checked ? checked.problem : null;
}

/** Columns for a validated config: the clear part as jsonb text, the secret part sealed. */
export function sealConfig(cipher: ConfigCipher, schema: JsonSchemaObject, config: Config): { config: string; encrypted_config: string | null; secretFields: string[] } {
  const { plain, secret } = splitSecrets(schema, config);
  return { config: JSON.stringify(plain), encrypted_config: cipher.sealJson(secret), secretFields: secretPaths(secret) };
}

/** The clear part of a stored config (jsonb arrives parsed from pg, possibly as text elsewhere). */
export function storedPlain(value: unknown): Config {
  if (isPlainObject(value)) return value;
  if (typeof value === 'string') {
    try {
      const parsed = JSON.parse(value) as unknown;
      return isPlainObject(parsed) ? parsed : {};
    } catch {
      return {};
    }
  }
  return {};
}

/** The stored config, secrets included (for validation and, later, the plugin runner). Throws if undecryptable. */
export function openConfig(cipher: ConfigCipher, row: { config: unknown; encrypted_config: string | null }): { plain: Config; secret: Config; full: Config } {
  const plain = storedPlain(row.config);
  const secret = cipher.openJson(row.encrypted_config);
  return { plain, secret, full: mergeSecrets(plain, secret) };
}
