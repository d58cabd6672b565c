import crypto from 'node:crypto';
import type { PluginContext } from '@certctl/sdk';
import { pemBlocks } from '@certctl/sdk/deploy';
import type { KeystoreConfig } from './config.js';

/**
 * keytool and openssl runs for one call. The keystore password never appears in
 * an argument list (where `ps` would show it): it is written to a 0600 file in
 * work_dir and passed as -storepass:file / -passout file:, and the file is
 * removed when the call ends.
 */
export class KeystoreTools {
  private constructor(private readonly ctx: PluginContext, private readonly cfg: KeystoreConfig, readonly passFile: string) {}

  static async open(ctx: PluginContext, cfg: KeystoreConfig, tag: string): Promise<KeystoreTools> {
    const passFile = `${cfg.workDir}/.certctl-${tag}.pass`;
    await ctx.fs.write(passFile, `${cfg.password}\n`, { mode: 0o600 });
    return new KeystoreTools(ctx, cfg, passFile);
  }

  async close(): Promise<void> {
    await this.ctx.fs.remove(this.passFile);
  }

  private timeout(): number {
    return Math.max(5_000, Math.min(60_000, this.ctx.clock.deadline() - this.ctx.clock.now() - 1_000));
  }

  async keytool(args: string[]): Promise<{ ok: boolean; output: string }> {
    const [command, ...prefix] = this.cfg.keytool;
    const r = await this.ctx.exec.run(command, [...prefix, ...args], { timeoutMs: this.timeout() });
    return { ok: r.exitCode === 0, output: `${r.stdout}\n${r.stderr}`.trim() };
  }

  private store(): string[] {
    return ['-keystore', this.cfg.keystorePath, '-storetype', this.cfg.storeType, '-storepass:file', this.passFile];
  }

  /** Whether the keystore opens with the configured password (and type). */
  async canOpen(): Promise<{ ok: boolean; output: string }> {
    return this.keytool(['-list', ...this.store()]);
  }

  /** The SHA-256 fingerprint of the certificate under the alias, or null when there is no such entry (or the store does not open). */
  async aliasFingerprint(): Promise<string | null> {
    const r = await this.keytool(['-list', '-rfc', '-alias', this.cfg.alias, ...this.store()]);
    if (!r.ok) return null;
    const first = pemBlocks(r.output).find((b) => b.label === 'CERTIFICATE');
    return first ? new crypto.X509Certificate(first.text).fingerprint256.replace(/:/g, '').toLowerCase() : null;
  }

  /**
   * The alias's current fingerprint (null: no such entry), or a problem when the
   * keystore does not open with the password and type. One keytool run in the
   * common case; a second only to tell a missing alias from a wrong password.
   */
  async current(): Promise<{ fingerprint: string | null } | { problem: string }> {
    const fingerprint = await this.aliasFingerprint();
    if (fingerprint) return { fingerprint };
    const open = await this.canOpen();
    return open.ok ? { fingerprint: null } : { problem: open.output };
  }

  /** Copies the alias's entry into a PKCS#12 file (the rollback backup). */
  exportAlias(to: string): Promise<{ ok: boolean; output: string }> {
    return this.keytool(['-importkeystore', '-noprompt', '-srckeystore', this.cfg.keystorePath, '-srcstoretype', this.cfg.storeType, '-srcstorepass:file', this.passFile, '-srcalias', this.cfg.alias,
      '-destkeystore', to, '-deststoretype', 'PKCS12', '-deststorepass:file', this.passFile, '-destalias', this.cfg.alias]);
  }

  /** Imports the alias's entry from a PKCS#12 file into the keystore, replacing an entry of that alias (-noprompt) and creating the keystore when needed. */
  importAlias(from: string): Promise<{ ok: boolean; output: string }> {
    return this.keytool(['-importkeystore', '-noprompt', '-srckeystore', from, '-srcstoretype', 'PKCS12', '-srcstorepass:file', this.passFile, '-srcalias', this.cfg.alias,
      '-destkeystore', this.cfg.keystorePath, '-deststoretype', this.cfg.storeType, '-deststorepass:file', this.passFile, '-destalias', this.cfg.alias]);
  }

  deleteAlias(): Promise<{ ok: boolean; output: string }> {
    return this.keytool(['-delete', '-alias', this.cfg.alias, ...this.store()]);
  }

  /** openssl pkcs12 -export: the agent's key and the certificate chain as one PKCS#12 entry named after the alias. */
  async buildPkcs12(chainFile: string, keyPath: string, out: string): Promise<{ ok: boolean; output: string }> {
    // Created first with 0600, so openssl (which keeps an existing file's mode) never leaves the bundle world-readable.
    await this.ctx.fs.write(out, '', { mode: 0o600 });
    const [command, ...prefix] = this.cfg.openssl;
    const r = await this.ctx.exec.run(command, [...prefix, 'pkcs12', '-export', '-in', chainFile, '-inkey', keyPath, '-name', this.cfg.alias, '-out', out, '-passout', `file:${this.passFile}`], { timeoutMs: this.timeout() });
    return { ok: r.exitCode === 0, output: `${r.stdout}\n${r.stderr}`.trim() };
  }
}
