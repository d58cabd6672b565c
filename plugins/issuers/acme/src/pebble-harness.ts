import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startAriShim, type AriShim } from './ari-shim.js';

/**
 * Test-only (never loaded by the plugin): a private Pebble ACME CA with
 * pebble-challtestsrv as its DNS, both from the Debian packages, on loopback ports
 * with their own config and TLS certificate in a temp dir. Every name resolves to
 * 127.0.0.1, where an http-01 responder answers from `keyAuthorization(token)`,
 * standing in for the kernel route that serves the plugin's kv. Validation is
 * immediate (PEBBLE_VA_NOSLEEP) and nonces are never rejected at random
 * (PEBBLE_WFE_NONCEREJECT=0) so runs are deterministic.
 */
export interface Pebble {
  /** Pebble's own directory URL. */
  directoryUrl: string;
  /** The directory through the ARI shim (Pebble plus renewalInfo). */
  ariDirectoryUrl: string;
  ari: AriShim;
  /** Trust anchor for Pebble's (and the shim's) HTTPS listener. */
  tlsCaPem: string;
  managementUrl: string;
  /** challtestsrv's management API (set-txt, clear-txt, ...). */
  challengeServerUrl: string;
  /** Pebble's management interface, trusted through tlsCaPem. */
  management(pathname: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  keyAuthorization: (token: string) => string | undefined | Promise<string | undefined>;
  /** EAB: require it, with these kid -> base64url HMAC keys. */
  eab?: Record<string, string>;
  /** PEBBLE_ALTERNATE_ROOTS: extra roots, offered as alternate chains (Link rel="alternate"). */
  alternateRoots?: number;
}

/** Runs "$@" until it exits, this process ($1) is gone, or the shell is told to stop; an orphan also removes the temp dir ($2). */
const WATCHDOG = [
  'parent=$1; dir=$2; shift 2',
  '"$@" & child=$!',
  "trap 'kill $child 2>/dev/null; wait $child; exit 0' TERM INT",
  'while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.3; done',
  'kill $child 2>/dev/null; wait $child',
  'kill -0 "$parent" 2>/dev/null || rm -rf "$dir"',
].join('\n');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function pebbleInstalled(): boolean {
  return fs.existsSync('/usr/bin/pebble') && fs.existsSync('/usr/bin/pebble-challtestsrv');
}

/** A throwaway CA and a 127.0.0.1/localhost server certificate for the HTTPS listeners. */
function makeTls(dir: string): { caPem: string; certPath: string; keyPath: string; certPem: string; keyPem: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=certctl pebble test TLS CA', '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=localhost']);
  fs.writeFileSync(path.join(dir, 'tls.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', 'tls.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'tls.ext', '-out', 'tls.pem']);
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return { caPem: read('ca.pem'), certPath: path.join(dir, 'tls.pem'), keyPath: path.join(dir, 'tls.key'), certPem: read('tls.pem'), keyPem: read('tls.key') };
}

function getText(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function waitFor(what: string, probe: () => Promise<boolean>, proc: ChildProcess, log: string): Promise<void> {
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode}): ${fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : ''}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within 20 s`);
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pebble-'));
  const tlsFiles = makeTls(dir);
  const [acmePort, mgmtPort, dnsPort, cmgmtPort, tlsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);

  const responder = http.createServer((req, res) => {
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
    Promise.resolve(m ? opts.keyAuthorization(m[1]) : undefined).then((value) => {
      res.writeHead(value ? 200 : 404, { 'content-type': 'text/plain' }).end(value ?? 'not found');
    }, () => res.writeHead(500).end());
  });
  await new Promise<void>((r) => responder.listen(0, '127.0.0.1', () => r()));
  const httpPort = (responder.address() as net.AddressInfo).port;

  fs.writeFileSync(path.join(dir, 'pebble.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`, managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: tlsFiles.certPath, privateKey: tlsFiles.keyPath, httpPort, tlsPort, ocspResponderURL: '',
      externalAccountBindingRequired: Boolean(opts.eab), ...(opts.eab ? { externalAccountMACKeys: opts.eab } : {}),
    },
  }));
  const start = (cmd: string, args: string[], env: Record<string, string>, logName: string) => {
    const fd = fs.openSync(path.join(dir, logName), 'a');
    // Through a watchdog shell: a test runner that kills this process with a signal skips
    // 'exit' handlers, and the servers must not outlive it.
    const p = spawn('/bin/sh', ['-c', WATCHDOG, 'watchdog', String(process.pid), dir, cmd, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    return p;
  };
  const chall = start('/usr/bin/pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${cmgmtPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''], {}, 'challtestsrv.log');
  const pebble = start('/usr/bin/pebble', ['-config', path.join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`],
    { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0', ...(opts.alternateRoots ? { PEBBLE_ALTERNATE_ROOTS: String(opts.alternateRoots) } : {}) }, 'pebble.log');
  const procs = [pebble, chall];
  const killAll = () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killAll);

  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
  try {
    await waitFor('pebble-challtestsrv', async () => (await fetch(`http://127.0.0.1:${cmgmtPort}/`)).status > 0, chall, path.join(dir, 'challtestsrv.log'));
    await waitFor('pebble', async () => (await getText(directoryUrl, tlsFiles.caPem)).status === 200, pebble, path.join(dir, 'pebble.log'));
  } catch (err) {
    killAll();
    responder.close();
    throw err;
  }
  const management = (pathname: string) => getText(`https://127.0.0.1:${mgmtPort}${pathname}`, tlsFiles.caPem);
  const ari = await startAriShim({ upstream: `https://127.0.0.1:${acmePort}`, tls: tlsFiles, management });

  return {
    directoryUrl,
    ariDirectoryUrl: `${ari.origin}/dir`,
    ari,
    tlsCaPem: tlsFiles.caPem,
    managementUrl: `https://127.0.0.1:${mgmtPort}`,
    challengeServerUrl: `http://127.0.0.1:${cmgmtPort}`,
    management,
    async stop() {
      await ari.stop();
      await new Promise<void>((r) => responder.close(() => r()));
      await Promise.all(procs.map((p) => new Promise<void>((r) => {
        if (p.exitCode !== null) return r();
        p.once('exit', () => r());
        p.kill('SIGTERM');
      })));
      process.removeListener('exit', killAll);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
