import http from 'node:http';
import net from 'node:net';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  rawBody: Buffer;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
}

export type Responder = (req: ReceivedRequest) => { status: number; body?: unknown; headers?: Record<string, string> } | 'hang';

/**
 * A loopback HTTP server standing in for a SaaS endpoint: it records every
 * request and answers with the responder of the longest matching path prefix
 * (default 200). 'hang' never answers (the caller's timeout must fire).
 */
export class HttpReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly responders = new Map<string, Responder>();
  private readonly sockets = new Set<net.Socket>();
  private server: http.Server | null = null;
  port = 0;

  on(prefix: string, responder: Responder): this {
    this.responders.set(prefix, responder);
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  received(prefix: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }

  async start(port = 0): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks);
        let json: unknown;
        try { json = JSON.parse(rawBody.toString('utf8')); } catch { json = undefined; }
        const r: ReceivedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, rawBody, json };
        this.requests.push(r);
        const prefix = [...this.responders.keys()].filter((p) => r.path.startsWith(p)).sort((a, b) => b.length - a.length)[0];
        const answer = prefix ? this.responders.get(prefix)!(r) : { status: 200 };
        if (answer === 'hang') return;
        const body = answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
        res.writeHead(answer.status, { 'content-type': typeof answer.body === 'string' ? 'text/plain' : 'application/json', ...answer.headers });
        res.end(body);
      });
    });
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Stops listening and drops open connections (a receiver that went down). */
  async stop(): Promise<void> {
    if (!this.server) return;
    const closed = new Promise<void>((resolve) => this.server!.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
    this.server = null;
  }
}
