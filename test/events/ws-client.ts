import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';

export interface LiveMessage {
  type: string;
  event?: { seq: number; topic: string; action: string; resource_id: string; hints: Record<string, string | null> };
  [k: string]: unknown;
}

/** A test client for /api/v1/ws that records messages, pings and the close code. */
export class LiveTestClient {
  readonly messages: LiveMessage[] = [];
  pings = 0;
  closeCode: number | null = null;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;
  readonly ws: WebSocket;

  constructor(baseUrl: string, dataDir: string, opts: { protocols?: string[]; path?: string } = {}) {
    const ca = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    this.ws = new WebSocket(baseUrl.replace(/^https/, 'wss') + (opts.path ?? '/api/v1/ws'), opts.protocols ?? ['certctl.v1'], { ca });
    this.ws.on('message', (d) => this.messages.push(JSON.parse(String(d)) as LiveMessage));
    this.ws.on('ping', () => { this.pings += 1; });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code) => { this.closeCode = code; resolve(code); }));
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  async authenticate(key: string): Promise<LiveMessage> {
    await this.opened;
    this.send({ type: 'auth', key });
    return this.waitFor((m) => m.type === 'ready');
  }

  events(): NonNullable<LiveMessage['event']>[] {
    return this.messages.filter((m) => m.type === 'event').map((m) => m.event!);
  }

  async waitFor(pred: (m: LiveMessage) => boolean, timeoutMs = 10_000): Promise<LiveMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching message in ${timeoutMs} ms; last of ${this.messages.length}: ${JSON.stringify(this.messages.slice(-3))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.ws.close();
  }
}
