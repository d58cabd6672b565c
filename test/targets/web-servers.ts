import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { freePort } from '../support/free-port.js';

/**
 * Real NGINX, Apache httpd and HAProxy from the Debian packages, each run by the
 * test as an ordinary process on a loopback port, with its config, pid, logs and
 * certificate files in a private directory (never the system service). Each
 * server answers TLS with the files a target plugin manages; the test reads the
 * served certificate with a real handshake.
 */

export type ServerKind = 'nginx' | 'apache' | 'haproxy';

export interface TlsServer {
  kind: ServerKind;
  port: number;
  dir: string;
  /** The files the plugin manages, as the server's config names them. */
  files: Record<string, string>;
  /** Files the plugin is configured to write that do not exist before the first deploy. */
  newFiles: Record<string, string>;
  /** Config for the server's target plugin (paths and this server's validate/reload argv). */
  pluginConfig: Record<string, unknown>;
  /** The pid of the server's main (master) process. */
  pid(): number;
  /** How many reloads the server has logged so far. */
  reloads(): number;
  stop(): Promise<void>;
}

/** SHA-256 fingerprint (lowercase hex) of the certificate the endpoint serves, or null when no handshake completes. */
export function servedFingerprint(port: number, servername = 'site.certctl.test', timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      resolve(cert ? cert.fingerprint256.replace(/:/g, '').toLowerCase() : null);
    });
    socket.on('error', () => resolve(null));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(null);
    });
  });
}

/** Polls until the endpoint serves `fingerprint` (graceful reloads switch over asynchronously); returns what it last saw. */
export async function waitForFingerprint(port: number, fingerprint: string, timeoutMs = 10_000): Promise<string | null> {
  const until = Date.now() + timeoutMs;
  let seen: string | null = null;
  while (Date.now() < until) {
    seen = await servedFingerprint(port);
    if (seen === fingerprint) return seen;
    await new Promise((r) => setTimeout(r, 50));
  }
  return seen;
}

const count = (file: string, pattern: RegExp) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').match(pattern)?.length ?? 0 : 0);

async function waitFor(what: string, check: () => boolean | Promise<boolean>, child: ChildProcess, log: () => string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${what}: the server exited (${child.exitCode}): ${log()}`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what}: timed out; log: ${log()}`);
}

function launch(argv: string[], dir: string): { child: ChildProcess; output: () => string } {
  const child = spawn(argv[0], argv.slice(1), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-1_000_000); });
  child.stderr!.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-1_000_000); });
  return { child, output: () => out };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

const readPid = (file: string) => (fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8').trim()) || 0 : 0);

/**
 * Starts a server serving `initial` (certificate + chain PEM, key PEM) on a free
 * loopback port. Certificate and key files are created 0640, so tests can see
 * that a deploy keeps an existing file's mode.
 */
export async function startServer(kind: ServerKind, dir: string, initial: { certificatePem: string; chainPem: string[]; keyPem: string }): Promise<TlsServer> {
  const port = await freePort();
  const tlsDir = path.join(dir, 'tls');
  fs.mkdirSync(tlsDir, { recursive: true });
  const write = (name: string, content: string) => {
    const p = path.join(tlsDir, name);
    fs.writeFileSync(p, content, { mode: 0o640 });
    fs.chmodSync(p, 0o640);
    return p;
  };
  const bundle = initial.certificatePem + initial.chainPem.join('');
  const pidFile = path.join(dir, `${kind}.pid`);

  if (kind === 'nginx') {
    const files = { cert_path: write('site.crt', bundle), key_path: write('site.key', initial.keyPem) };
    const conf = path.join(dir, 'nginx.conf');
    const errorLog = path.join(dir, 'error.log');
    fs.writeFileSync(conf, `daemon off;
master_process on;
worker_processes 1;
pid ${pidFile};
error_log ${errorLog} notice;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} ssl;
    server_name site.certctl.test;
    ssl_certificate ${files.cert_path};
    ssl_certificate_key ${files.key_path};
    location / { return 200 "ok\\n"; }
  }
}
`);
    const base = ['/usr/sbin/nginx', '-p', `${dir}/`, '-e', errorLog, '-c', conf];
    const { child, output } = launch(base, dir);
    await waitFor('nginx start', async () => readPid(pidFile) > 0 && (await servedFingerprint(port)) !== null, child, () => output() + fs.readFileSync(errorLog, 'utf8'));
    // The chain alone, as for ssl_trusted_certificate: not there yet, so the first deploy creates it.
    const newFiles = { chain_path: path.join(tlsDir, 'chain.pem') };
    return {
      kind, port, dir, files, newFiles,
      pluginConfig: { ...files, ...newFiles, validate_command: [...base.slice(0, 1), '-t', ...base.slice(1)], reload_command: [...base, '-s', 'reload'], verify: { host: '127.0.0.1', port, server_name: 'site.certctl.test' } },
      pid: () => readPid(pidFile),
      reloads: () => count(errorLog, /signal 1 \(SIGHUP\) received/g),
      stop: () => stopChild(child),
    };
  }

  if (kind === 'apache') {
    const files = { cert_path: write('site.crt', bundle), key_path: write('site.key', initial.keyPem) };
    const conf = path.join(dir, 'httpd.conf');
    const errorLog = path.join(dir, 'error.log');
    const mod = (name: string, file: string) => `LoadModule ${name}_module /usr/lib/apache2/modules/mod_${file}.so`;
    fs.writeFileSync(conf, `ServerRoot ${dir}
DefaultRuntimeDir ${dir}
PidFile ${pidFile}
ErrorLog ${errorLog}
LogLevel notice
ServerName site.certctl.test
${mod('mpm_event', 'mpm_event')}
${mod('authz_core', 'authz_core')}
${mod('socache_shmcb', 'socache_shmcb')}
${mod('ssl', 'ssl')}
StartServers 1
ServerLimit 4
ThreadsPerChild 4
MaxRequestWorkers 16
Listen 127.0.0.1:${port} https
DocumentRoot ${dir}
SSLSessionCache shmcb:${dir}/ssl_scache(32768)
<VirtualHost 127.0.0.1:${port}>
  ServerName site.certctl.test
  SSLEngine on
  SSLCertificateFile ${files.cert_path}
  SSLCertificateKeyFile ${files.key_path}
</VirtualHost>
`);
    const { child, output } = launch(['/usr/sbin/apache2', '-f', conf, '-DFOREGROUND'], dir);
    await waitFor('apache start', async () => readPid(pidFile) > 0 && (await servedFingerprint(port)) !== null, child, () => output() + (fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : ''));
    return {
      kind, port, dir, files, newFiles: {},
      pluginConfig: { ...files, validate_command: ['/usr/sbin/apache2', '-t', '-f', conf], reload_command: ['/usr/sbin/apache2', '-k', 'graceful', '-f', conf], verify: { host: '127.0.0.1', port, server_name: 'site.certctl.test' } },
      pid: () => readPid(pidFile),
      reloads: () => count(errorLog, /SIGUSR1 received\.\s+Doing graceful restart/g),
      stop: () => stopChild(child),
    };
  }

  const files = { pem_path: write('site.pem', bundle + initial.keyPem) };
  const conf = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(conf, `global
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend tls
  bind 127.0.0.1:${port} ssl crt ${files.pem_path}
  http-request return status 200 content-type text/plain string ok
`);
  // Master-worker mode in the foreground: SIGUSR2 to the master re-reads the config and certificates.
  const { child, output } = launch(['/usr/sbin/haproxy', '-W', '-f', conf, '-p', pidFile], dir);
  await waitFor('haproxy start', async () => readPid(pidFile) > 0 && (await servedFingerprint(port)) !== null, child, output);
  return {
    kind, port, dir, files, newFiles: {},
    pluginConfig: { ...files, validate_command: ['/usr/sbin/haproxy', '-c', '-f', conf], reload_command: ['/usr/bin/pkill', '-USR2', '-F', pidFile], verify: { host: '127.0.0.1', port } },
    pid: () => readPid(pidFile),
    reloads: () => (output().match(/Reloading HAProxy/g) ?? []).length,
    stop: () => stopChild(child),
  };
}
