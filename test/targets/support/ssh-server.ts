import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';

const { Server, utils } = ssh2;

/**
 * A real SSH server on loopback for the ssh target's tests: the SSH protocol
 * (key exchange, host key, password and public-key auth) is ssh2's server, the
 * `sftp` subsystem is OpenSSH's own sftp-server binary piped onto the channel,
 * and `exec` runs the command line with /bin/sh -c, as sshd does with the login
 * shell. So the plugin meets real SFTP semantics (posix-rename, hardlink, modes)
 * and a real shell parsing the quoted reload command. No fakes in between.
 */
export const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

export interface TestSshServer {
  port: number;
  hostKeyFingerprint: string;
  /** Command lines the server was asked to run, as received. */
  commands: string[];
  close(): Promise<void>;
}

/**
 * An Ed25519 key pair in OpenSSH format. About one pair in 500 that ssh2 generates is
 * refused by its own parseKey ("Malformed OpenSSH private key"), so a pair is kept only
 * once ssh2 reads both halves back.
 */
export function makeKeyPair(): { privateKey: string; publicKey: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return { privateKey: pair.private, publicKey: pair.public };
  }
  throw new Error('ssh2 generated no readable Ed25519 key pair in 20 attempts');
}

export const fingerprintOf = (publicKeyBlob: Buffer) => `SHA256:${crypto.createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;

export async function startSshServer(opts: { user: string; password: string; clientPublicKey: string; hostPrivateKey: string; cwd: string }): Promise<TestSshServer> {
  const allowed = utils.parseKey(opts.clientPublicKey);
  const hostKey = utils.parseKey(opts.hostPrivateKey);
  if (allowed instanceof Error || hostKey instanceof Error) throw new Error('bad test key');
  const commands: string[] = [];
  const server = new Server({ hostKeys: [opts.hostPrivateKey] }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (ctx) => {
      if (ctx.username !== opts.user) return ctx.reject(['password', 'publickey']);
      if (ctx.method === 'password' && ctx.password === opts.password) return ctx.accept();
      if (ctx.method === 'publickey' && ctx.key.algo === allowed.type && ctx.key.data.equals(allowed.getPublicSSH())) {
        if (!ctx.signature || !ctx.blob) return ctx.accept(); // the key query; the signed request follows
        return allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : ctx.reject();
      }
      return ctx.reject(['password', 'publickey']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('subsystem', (accept, reject, info) => {
          if (info.name !== 'sftp') return reject();
          const channel = accept();
          const child = spawn(SFTP_SERVER, [], { stdio: ['pipe', 'pipe', 'ignore'] });
          channel.pipe(child.stdin);
          child.stdout.pipe(channel);
          child.on('exit', () => channel.close());
          channel.on('close', () => child.kill());
        });
        session.on('exec', (accept, _reject, info) => {
          commands.push(info.command);
          const channel = accept();
          const child = spawn('/bin/sh', ['-c', info.command], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
          child.stdout.pipe(channel, { end: false });
          child.stderr.pipe(channel.stderr, { end: false });
          child.on('close', (code, signal) => {
            if (signal) channel.exit(signal);
            else channel.exit(code ?? 1);
            channel.end();
          });
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hostKeyFingerprint: fingerprintOf(hostKey.getPublicSSH()),
    commands,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
