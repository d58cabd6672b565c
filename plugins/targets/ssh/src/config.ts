import type { Json, PluginContext } from '@certctl/sdk';
import { checkArgv, checkPath } from '@certctl/sdk/deploy';
import { quoteArgv } from './shell-quote.js';

/** One remote file to place: where, and the mode a new file gets. */
export interface RemoteFileSpec {
  path: string;
  newMode: number;
}

export interface SshTargetConfig {
  host: string;
  port: number;
  user: string;
  auth: { password: string } | { privateKey: string; passphrase?: string };
  hostKeyFingerprint: string;
  certPath: string;
  keyPath: string;
  chainPath: string | null;
  certMode: number;
  keyMode: number;
  reload: [string, ...string[]] | null;
  /** The reload argv as one shell-quoted line for SSH exec. */
  reloadLine: string | null;
  timeoutMs: number;
}

/** Thrown for a config the plugin cannot use; deploy turns it into a `failed` result before connecting. */
export class SshConfigError extends Error {
  override name = 'SshConfigError';
}

const str = (v: Json | undefined): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const mode = (v: Json | undefined, fallback: number): number => (typeof v === 'string' && /^0?[0-7]{3}$/.test(v) ? parseInt(v, 8) : fallback);

/**
 * The instance config as the plugin uses it. The kernel validated it against the
 * manifest schema already; the path and command checks are repeated here because
 * they are what stands between a config value and a remote shell. Remote paths
 * are not `x-certctl-path` fields on purpose: they name files on the remote host,
 * and marking them would grant the agent write access to the same paths locally.
 */
export async function readConfig(ctx: PluginContext): Promise<SshTargetConfig> {
  const c = ctx.config;
  const host = str(c.host);
  const user = str(c.user);
  if (!host || !/^[A-Za-z0-9._:-]+$/.test(host)) throw new SshConfigError('host must be a host name or IP address');
  if (!user || !/^[A-Za-z0-9._][A-Za-z0-9._-]*$/.test(user)) throw new SshConfigError('user must be a plain login name');
  const fingerprint = str(c.host_key_fingerprint);
  if (!fingerprint || !/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(fingerprint)) {
    throw new SshConfigError('host_key_fingerprint must be the SHA256:... fingerprint of the remote host key (ssh-keygen -lf); unknown host keys are never accepted');
  }
  let certPath: string, keyPath: string, chainPath: string | null;
  let reload: [string, ...string[]] | null = null;
  let reloadLine: string | null = null;
  try {
    certPath = checkPath(c.cert_path, 'cert_path');
    keyPath = checkPath(c.key_path, 'key_path');
    chainPath = c.chain_path === undefined || c.chain_path === null ? null : checkPath(c.chain_path, 'chain_path');
    const raw = c.reload_command;
    if (raw !== undefined && raw !== null && !(Array.isArray(raw) && raw.length === 0)) {
      reload = checkArgv(raw, 'reload_command');
      reloadLine = quoteArgv(reload);
    }
  } catch (err) {
    throw new SshConfigError((err as Error).message);
  }
  const paths = [certPath, keyPath, ...(chainPath ? [chainPath] : [])];
  if (new Set(paths).size !== paths.length) throw new SshConfigError('cert_path, key_path and chain_path must be different files');

  let auth: SshTargetConfig['auth'];
  if ((str(c.auth_method) ?? 'key') === 'password') {
    const password = await ctx.secrets.get('password');
    if (!password) throw new SshConfigError('auth_method is password but no password is set');
    auth = { password };
  } else {
    let privateKey = await ctx.secrets.get('private_key');
    const keyFile = str(c.private_key_path);
    if (!privateKey && keyFile) {
      try {
        privateKey = await ctx.fs.read(checkPath(keyFile, 'private_key_path'));
      } catch (err) {
        throw new SshConfigError(`cannot read private_key_path: ${(err as Error).message}`);
      }
    }
    if (!privateKey) throw new SshConfigError('auth_method is key but neither private_key nor private_key_path is set');
    const passphrase = await ctx.secrets.get('private_key_passphrase');
    auth = { privateKey, ...(passphrase ? { passphrase } : {}) };
  }
  const port = typeof c.port === 'number' && Number.isInteger(c.port) && c.port > 0 && c.port < 65536 ? c.port : 22;
  const seconds = typeof c.timeout_seconds === 'number' && c.timeout_seconds > 0 ? Math.min(c.timeout_seconds, 300) : 30;
  return {
    host, port, user, auth, hostKeyFingerprint: fingerprint.replace(/=$/, ''), certPath, keyPath, chainPath,
    certMode: mode(c.cert_mode, 0o644), keyMode: mode(c.key_mode, 0o600), reload, reloadLine, timeoutMs: seconds * 1000,
  };
}
