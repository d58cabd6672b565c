import crypto from 'node:crypto';
import { Client, type ConnectConfig, type SFTPWrapper, type Stats } from 'ssh2';
import type { SshTargetConfig } from './config.js';

/** SFTP status code for "no such file" (draft-ietf-secsh-filexfer, SSH_FX_NO_SUCH_FILE). */
const SSH_FX_NO_SUCH_FILE = 2;

/** A connect or protocol failure with a reason fit for an operator. */
export class SshError extends Error {
  override name = 'SshError';
}

export interface ExecOutcome {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** OpenSSH's fingerprint form: SHA256: and the unpadded base64 of the key blob's digest. */
export const hostKeyFingerprint = (keyBlob: Buffer): string => `SHA256:${crypto.createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;

const promisify = <T>(fn: (cb: (err: Error | undefined | null, value: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

/** The SFTP calls the plugin uses, as promises. */
export class RemoteFs {
  constructor(private readonly sftp: SFTPWrapper) {}

  /** Stats, or null when the file does not exist. */
  async stat(path: string): Promise<Stats | null> {
    try {
      return await promisify<Stats>((cb) => this.sftp.stat(path, cb));
    } catch (err) {
      if ((err as { code?: unknown }).code === SSH_FX_NO_SUCH_FILE) return null;
      throw err;
    }
  }
  read(path: string): Promise<Buffer> {
    return promisify<Buffer>((cb) => this.sftp.readFile(path, cb));
  }
  /** Creates or truncates `path` with `mode`, then sets the mode again (the remote umask applies at create). */
  async write(path: string, data: Buffer, mode: number): Promise<void> {
    await promisify<void>((cb) => this.sftp.writeFile(path, data, { mode, flag: 'w' }, (err) => cb(err, undefined)));
    await this.chmod(path, mode);
  }
  chmod(path: string, mode: number): Promise<void> {
    return promisify<void>((cb) => this.sftp.chmod(path, mode, (err) => cb(err, undefined)));
  }
  chown(path: string, uid: number, gid: number): Promise<void> {
    return promisify<void>((cb) => this.sftp.chown(path, uid, gid, (err) => cb(err, undefined)));
  }
  async unlink(path: string): Promise<void> {
    try {
      await promisify<void>((cb) => this.sftp.unlink(path, (err) => cb(err, undefined)));
    } catch (err) {
      if ((err as { code?: unknown }).code !== SSH_FX_NO_SUCH_FILE) throw err;
    }
  }
  hardlink(existing: string, link: string): Promise<void> {
    return promisify<void>((cb) => this.sftp.ext_openssh_hardlink(existing, link, (err) => cb(err, undefined)));
  }
  /**
   * Replaces `to` with `from` in one step. Plain SFTP rename refuses an existing
   * target, so this needs OpenSSH's posix-rename extension (every OpenSSH since
   * 4.8 has it); without it the swap would leave a moment with no file at all.
   */
  replace(from: string, to: string): Promise<void> {
    return promisify<void>((cb) => this.sftp.ext_openssh_rename(from, to, (err) => cb(err, undefined)));
  }
}

/** One authenticated connection with its SFTP channel. */
export class SshSession {
  private constructor(private readonly client: Client, readonly fs: RemoteFs) {}

  /**
   * Connects, accepting only the pinned host key, and opens SFTP. A refused host
   * key rejects with the fingerprint the server presented, so the operator can
   * compare it out of band; nothing is sent to an unverified host.
   */
  static async open(cfg: SshTargetConfig, timeoutMs: number): Promise<SshSession> {
    const client = new Client();
    let presented: string | null = null;
    const options: ConnectConfig = {
      host: cfg.host,
      port: cfg.port,
      username: cfg.user,
      readyTimeout: timeoutMs,
      keepaliveInterval: 0,
      hostVerifier: (key: Buffer) => {
        presented = hostKeyFingerprint(key);
        return presented === cfg.hostKeyFingerprint;
      },
      ...('password' in cfg.auth ? { password: cfg.auth.password, tryKeyboard: false } : { privateKey: cfg.auth.privateKey, passphrase: cfg.auth.passphrase }),
    };
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        client.removeAllListeners('ready');
        client.end();
        if (presented && presented !== cfg.hostKeyFingerprint) {
          reject(new SshError(`host key mismatch for ${cfg.host}:${cfg.port}: expected ${cfg.hostKeyFingerprint}, the server presented ${presented}; not connecting`));
        } else if (/authentication methods failed/i.test(err.message)) reject(new SshError(`authentication as ${cfg.user} failed on ${cfg.host}:${cfg.port}`));
        else reject(new SshError(`cannot connect to ${cfg.host}:${cfg.port}: ${err.message}`));
      };
      client.once('ready', () => { client.removeListener('error', fail); client.on('error', () => {}); resolve(); });
      client.once('error', fail);
      try {
        client.connect(options);
      } catch (err) {
        fail(err as Error);
      }
    });
    try {
      const sftp = await promisify<SFTPWrapper>((cb) => client.sftp(cb));
      return new SshSession(client, new RemoteFs(sftp));
    } catch (err) {
      client.end();
      throw new SshError(`the SFTP subsystem is not available on ${cfg.host}: ${(err as Error).message}`);
    }
  }

  /** Runs one command line; resolves with its exit status, or a null code when killed by a signal or the timeout. */
  exec(commandLine: string, timeoutMs: number): Promise<ExecOutcome> {
    return new Promise((resolve, reject) => {
      this.client.exec(commandLine, (err, channel) => {
        if (err) return reject(new SshError(`cannot run the command: ${err.message}`));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let exitCode: number | null = null;
        let signal: string | null = null;
        const cap = (list: Buffer[]) => (chunk: Buffer) => { if (list.reduce((n, b) => n + b.length, 0) < 64 * 1024) list.push(chunk); };
        const timer = setTimeout(() => { signal = 'timeout'; channel.close(); }, timeoutMs);
        channel.on('data', cap(out));
        channel.stderr.on('data', cap(errOut));
        channel.on('exit', (code: number | null, sig?: string) => { exitCode = typeof code === 'number' ? code : null; if (sig) signal = sig; });
        channel.on('close', () => {
          clearTimeout(timer);
          resolve({ exitCode, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
        });
      });
    });
  }

  close(): void {
    this.client.end();
  }
}
