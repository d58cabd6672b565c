import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { StartupError } from '../errors.js';

const VERSION = 'v1';
const PBKDF2_ITERATIONS = 210_000;

/**
 * AES-256-GCM for plugin-config secrets at rest. The key is derived with
 * PBKDF2-SHA256 from CERTCTL_CONFIG_ENCRYPTION_KEY (or from a random key kept in
 * <data>/config-encryption.key when none is given) and a salt stored in the
 * database, so every replica derives the same key. A check value stored next to
 * the salt makes a wrong key fail at start instead of at first decrypt.
 */
export class ConfigCipher {
  private constructor(private readonly key: Buffer) {}

  static async open(knex: Knex, opts: { passphrase?: string; dataDir: string }): Promise<{ cipher: ConfigCipher; generatedKeyFile?: string }> {
    let passphrase = opts.passphrase;
    let generatedKeyFile: string | undefined;
    if (!passphrase) {
      const file = path.join(opts.dataDir, 'config-encryption.key');
      if (fs.existsSync(file)) passphrase = fs.readFileSync(file, 'utf8').trim();
      else {
        passphrase = crypto.randomBytes(32).toString('base64url');
        fs.mkdirSync(opts.dataDir, { recursive: true });
        fs.writeFileSync(file, passphrase + '\n', { mode: 0o600, flag: 'wx' });
        generatedKeyFile = file;
      }
    }
    const row = (await knex('kernel_settings').where({ key: 'config_encryption' }).first()) as { value: { salt: string; check: string } } | undefined;
    let salt: Buffer;
    if (row) salt = Buffer.from(row.value.salt, 'base64');
    else {
      salt = crypto.randomBytes(16);
      const cipher = new ConfigCipher(derive(passphrase, salt));
      await knex('kernel_settings')
        .insert({ key: 'config_encryption', value: JSON.stringify({ salt: salt.toString('base64'), check: cipher.encrypt('certctl-key-check') }) })
        .onConflict('key').ignore();
      const stored = (await knex('kernel_settings').where({ key: 'config_encryption' }).first()) as { value: { salt: string } };
      salt = Buffer.from(stored.value.salt, 'base64');
    }
    const cipher = new ConfigCipher(derive(passphrase, salt));
    const check = ((await knex('kernel_settings').where({ key: 'config_encryption' }).first()) as { value: { check: string } }).value.check;
    try {
      if (cipher.decrypt(check) !== 'certctl-key-check') throw new Error('mismatch');
    } catch {
      throw new StartupError('CERTCTL_CONFIG_ENCRYPTION_KEY does not match the key that encrypted the stored secrets');
    }
    return { cipher, generatedKeyFile };
  }

  /** For tests and tools that hold a raw key. */
  static fromKey(key: Buffer): ConfigCipher {
    if (key.length !== 32) throw new Error('AES-256 key must be 32 bytes');
    return new ConfigCipher(key);
  }

  /**
   * A 32-byte key for one purpose, derived with HKDF-SHA256 from this key and
   * `info` (the caller binds it to its owner). Never stored: every kernel holding
   * the same passphrase and salt derives the same bytes, and the sealing key
   * itself never leaves this object.
   */
  deriveKey(info: string): Buffer {
    return Buffer.from(crypto.hkdfSync('sha256', this.key, Buffer.from('certctl-derived-key-v1'), Buffer.from(info, 'utf8'), 32));
  }

  encrypt(plaintext: string): string {
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
    return [VERSION, iv.toString('base64'), Buffer.concat([body, c.getAuthTag()]).toString('base64')].join(':');
  }

  decrypt(sealed: string): string {
    const [version, ivB64, dataB64] = sealed.split(':');
    if (version !== VERSION || !ivB64 || !dataB64) throw new Error('Unrecognised ciphertext format');
    const data = Buffer.from(dataB64, 'base64');
    const d = crypto.createDecipheriv('aes-256-gcm', this.key, Buffer.from(ivB64, 'base64'));
    d.setAuthTag(data.subarray(data.length - 16));
    return Buffer.concat([d.update(data.subarray(0, data.length - 16)), d.final()]).toString('utf8');
  }

  sealJson(value: Record<string, unknown>): string | null {
    return Object.keys(value).length ? this.encrypt(JSON.stringify(value)) : null;
  }

  openJson(sealed: string | null | undefined): Record<string, unknown> {
    return sealed ? (JSON.parse(this.decrypt(sealed)) as Record<string, unknown>) : {};
  }
}

function derive(passphrase: string, salt: Buffer): Buffer {
  return crypto.pbkdf2Sync(passphrase, salt, PBKDF2_ITERATIONS, 32, 'sha256');
}

type Schema = { properties?: Record<string, Schema>; writeOnly?: boolean; 'x-secret'?: boolean; type?: unknown };

const isSecret = (s: Schema | undefined) => Boolean(s && (s.writeOnly === true || s['x-secret'] === true));

/**
 * Splits a config object by its JSON schema into the part stored in clear (jsonb)
 * and the secret part (encrypted). Nested objects are split field by field.
 */
export function splitSecrets(schema: Schema, config: Record<string, unknown>): { plain: Record<string, unknown>; secret: Record<string, unknown> } {
  const plain: Record<string, unknown> = {};
  const secret: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    const sub = schema.properties?.[k];
    if (isSecret(sub)) secret[k] = v;
    else if (sub?.properties && v && typeof v === 'object' && !Array.isArray(v)) {
      const inner = splitSecrets(sub, v as Record<string, unknown>);
      plain[k] = inner.plain;
      if (Object.keys(inner.secret).length) secret[k] = inner.secret;
    } else plain[k] = v;
  }
  return { plain, secret };
}

/** Deep-merges the decrypted secret part back into the plain part. */
export function mergeSecrets(plain: Record<string, unknown>, secret: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...plain };
  for (const [k, v] of Object.entries(secret)) {
    const p = out[k];
    out[k] = p && typeof p === 'object' && !Array.isArray(p) && v && typeof v === 'object' ? mergeSecrets(p as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** Paths of the secrets that are set (for "configured" badges), never their values. */
export function secretPaths(secret: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(secret).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) ? secretPaths(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}
