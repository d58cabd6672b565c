import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { CLI, REPO_ROOT } from '../support/spawn-kernel.js';
import { waitFor } from '../support/wait.js';

/** The agent tests' target plugin (writes files through the shared deploy pipeline). */
export const AGENT_PLUGINS_DIR = fileURLToPath(new URL('../fixtures/agent-plugins/', import.meta.url));

export const sha256Hex = (pem: string) => crypto.createHash('sha256').update(new crypto.X509Certificate(pem).raw).digest('hex');

/** A self-signed EC certificate and key made by openssl, for loopback servers in the tests. */
export function selfSigned(dir: string, name: string, cn: string): { certPath: string; keyPath: string; cert: string; key: string } {
  const keyPath = path.join(dir, `${name}.key`);
  const certPath = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-out', certPath,
    '-subj', `/CN=${cn}`, '-days', '2', '-addext', `subjectAltName=DNS:${cn},DNS:localhost,IP:127.0.0.1`], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { certPath, keyPath, cert: fs.readFileSync(certPath, 'utf8'), key: fs.readFileSync(keyPath, 'utf8') };
}

export interface AgentProcess {
  child: ChildProcess;
  /** Parsed pino lines so far. */
  logs(): Record<string, any>[];
  stderr(): string;
  waitForLog(what: string, match: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Runs the real `certctl agent` from the built CLI (bin/certctl.js -> agent/dist). */
export function spawnAgent(env: Record<string, string>): AgentProcess {
  if (!fs.existsSync(path.join(REPO_ROOT, 'agent', 'dist', 'cli.js'))) throw new Error('agent/dist is missing: run `npx tsc -b` (npm test does)');
  const child = spawn(process.execPath, [CLI, 'agent'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', CERTCTL_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, any>[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p));
      } catch {
        lines.push({ msg: p });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    logs: () => lines,
    stderr: () => stderr,
    waitForLog: (what, match, timeoutMs = 20_000) => waitFor(`agent log: ${what}\nstderr: ${stderr.slice(-2000)}\nlast lines: ${JSON.stringify(lines.slice(-5))}`, () => lines.find(match), timeoutMs),
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: string;
}

/**
 * A TLS-terminating proxy in front of the control plane that records every
 * request the agent sends (the agent pins the proxy's certificate). Lets a test
 * read the agent's whole conversation with a real kernel.
 */
export class RecordingProxy {
  readonly requests: RecordedRequest[] = [];
  private server: https.Server | null = null;
  private readonly upstreamAgent: https.Agent;
  port = 0;

  constructor(private readonly upstream: string, upstreamCa: string, private readonly identity: { cert: string; key: string }) {
    this.upstreamAgent = new https.Agent({ ca: upstreamCa, keepAlive: true });
  }

  get fingerprint(): string {
    return sha256Hex(this.identity.cert);
  }

  async start(): Promise<void> {
    this.server = https.createServer({ cert: this.identity.cert, key: this.identity.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, body: body.toString('utf8') });
        const headers = { ...req.headers, host: new URL(this.upstream).host };
        const up = https.request(new URL(req.url ?? '/', this.upstream), { method: req.method, headers, agent: this.upstreamAgent }, (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        });
        up.on('error', () => { res.writeHead(502); res.end(); });
        up.end(body);
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.upstreamAgent.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/**
 * A TLS endpoint standing in for the web server a target feeds: every handshake
 * serves the certificate and key currently in the given files (as a server does
 * after a reload), or a fixed fallback while they are missing or unusable.
 */
export class FileBackedTlsServer {
  private server: tls.Server | null = null;
  port = 0;

  constructor(private readonly files: { certPath: string; keyPath: string } | null, private readonly fallback: { cert: string; key: string }) {}

  private context(): tls.SecureContext {
    if (this.files) {
      try {
        return tls.createSecureContext({ cert: fs.readFileSync(this.files.certPath), key: fs.readFileSync(this.files.keyPath) });
      } catch {
        // Not deployed yet (or half-written): serve the fallback.
      }
    }
    return tls.createSecureContext(this.fallback);
  }

  async start(): Promise<void> {
    this.server = tls.createServer({ ...this.fallback, SNICallback: (_name, cb) => cb(null, this.context()) }, (socket) => socket.end());
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

export const tempDir = (prefix: string) => fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
