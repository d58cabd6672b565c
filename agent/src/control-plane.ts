import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { AgentConfigError, type ServerTrust } from './config.js';

/** The control plane could not be reached or is not answering properly (network error, 5xx, 429): try again later. */
export class ServerUnavailable extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'ServerUnavailable';
  }
}

/** The control plane answered and said no (4xx): retrying the same request will not help. */
export class ServerRefused extends Error {
  constructor(message: string, readonly status: number, readonly code: string | undefined) {
    super(message);
    this.name = 'ServerRefused';
  }
}

const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Trust by fingerprint: the TLS handshake runs without chain checks, and the
 * connection is handed to the HTTP client only once the server's certificate
 * hashes to the pinned value, so not a byte of a request (API key included)
 * reaches a server that is not the pinned one.
 */
class PinnedAgent extends https.Agent {
  constructor(private readonly sha256: string) {
    super({ keepAlive: true, maxSockets: 4 });
  }

  override createConnection(options: https.RequestOptions, cb?: (err: Error | null, stream: Duplex) => void): undefined {
    // The http Agent waits for this callback before writing anything to the socket.
    const callback = cb as (err: Error | null, stream?: Duplex) => void;
    const socket = tls.connect({ ...(options as tls.ConnectionOptions), rejectUnauthorized: false });
    const onError = (err: Error) => callback(err);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.removeListener('error', onError);
      const raw = socket.getPeerCertificate()?.raw;
      const seen = raw ? crypto.createHash('sha256').update(raw).digest('hex') : 'none';
      if (seen !== this.sha256) {
        socket.destroy();
        callback(new Error(`the server's certificate (sha256 ${seen}) is not the pinned one (CERTCTL_SERVER_CERT_SHA256)`));
        return;
      }
      callback(null, socket);
    });
    return undefined;
  }
}

export function trustAgent(trust: ServerTrust): https.Agent {
  if (trust.mode === 'pinned') return new PinnedAgent(trust.sha256);
  if (trust.mode === 'ca-file') {
    let ca: string;
    try {
      ca = fs.readFileSync(trust.caFile, 'utf8');
    } catch (err) {
      throw new AgentConfigError(`CERTCTL_SERVER_CA_FILE ${trust.caFile} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return new https.Agent({ keepAlive: true, maxSockets: 4, ca });
  }
  return new https.Agent({ keepAlive: true, maxSockets: 4 });
}

export interface ApiCall {
  method: 'GET' | 'POST';
  path: string;
  /** Bearer credential: the agent's API key, or the bootstrap token for registration. */
  bearer?: string;
  body?: unknown;
  timeoutMs?: number;
}

/** A tiny JSON-over-HTTPS client for the agent routes. */
export class ControlPlaneClient {
  constructor(readonly baseUrl: string, private readonly agent: https.Agent) {}

  request<T>(call: ApiCall): Promise<T> {
    const url = new URL(call.path.replace(/^\//, ''), `${this.baseUrl}/`);
    const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'certctl-agent' };
    if (call.bearer) headers.authorization = `Bearer ${call.bearer}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    return new Promise<T>((resolve, reject) => {
      const req = https.request(url, { method: call.method, headers, agent: this.agent, timeout: call.timeoutMs ?? REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`the response is over ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('error', (err) => reject(new ServerUnavailable(`${call.method} ${url.pathname}: ${err.message}`)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = null;
          try {
            body = text ? JSON.parse(text) : null;
          } catch {
            body = null;
          }
          if (status >= 200 && status < 300) return resolve(body as T);
          const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
          const what = `${call.method} ${url.pathname} answered ${status}${err?.code ? ` ${err.code}` : ''}${err?.message ? `: ${err.message}` : ''}`;
          if (status >= 500 || status === 429 || status === 408) reject(new ServerUnavailable(what, status));
          else reject(new ServerRefused(what, status, err?.code));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${call.timeoutMs ?? REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(new ServerUnavailable(`${call.method} ${url.origin}${url.pathname}: ${err.code && !err.message.includes(err.code) ? `${err.code} ` : ''}${err.message}`)));
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
