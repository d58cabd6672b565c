import type { Json, PluginContext } from '@certctl/sdk';
import { checkArgv, checkPath, DeployConfigError, type DeployCommand } from '@certctl/sdk/deploy';

export interface KeystoreConfig {
  keystorePath: string;
  storeType: 'JKS' | 'PKCS12';
  alias: string;
  /** A directory only the agent uses, for the short-lived password file, the PKCS#12 bundle and the rollback backups. */
  workDir: string;
  keytool: [string, ...string[]];
  openssl: [string, ...string[]];
  reload: DeployCommand | null;
  password: string;
}

const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The instance config; throws DeployConfigError for anything unusable (before any command runs). */
export async function readConfig(ctx: PluginContext): Promise<KeystoreConfig> {
  const c: Readonly<Record<string, Json>> = ctx.config;
  const keystorePath = checkPath(c.keystore_path, 'keystore_path');
  const workDir = checkPath(c.work_dir, 'work_dir');
  if (keystorePath.startsWith(`${workDir}/`)) throw new DeployConfigError('keystore_path must not be inside work_dir');
  const storeType = c.keystore_type ?? 'JKS';
  if (storeType !== 'JKS' && storeType !== 'PKCS12') throw new DeployConfigError('keystore_type must be JKS or PKCS12');
  const alias = c.alias ?? 'server';
  // keytool treats aliases case-insensitively and an alias starting with "-" as an option.
  if (typeof alias !== 'string' || !ALIAS.test(alias)) throw new DeployConfigError('alias must be 1-64 letters, digits or . _ - (starting with a letter or digit)');
  const password = await ctx.secrets.get('keystore_password');
  if (!password || password.length < 6) throw new DeployConfigError('keystore_password must be set (keytool requires at least 6 characters)');
  if (/[\r\n\0]/.test(password)) throw new DeployConfigError('keystore_password must not contain line breaks or NUL');
  return {
    keystorePath, storeType, alias: alias.toLowerCase(), workDir, password,
    keytool: checkArgv(c.keytool_command ?? ['/usr/bin/keytool'], 'keytool_command'),
    openssl: checkArgv(c.openssl_command ?? ['/usr/bin/openssl'], 'openssl_command'),
    reload: c.reload_command === undefined || c.reload_command === null ? null : { argv: checkArgv(c.reload_command, 'reload_command') },
  };
}
