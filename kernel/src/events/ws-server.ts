import type { IncomingMessage } from 'node:http';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { authenticateApiKey } from '../auth/api-keys.js';
import type { Principal } from '../auth/principal.js';
import { ANONYMOUS_ADMIN } from '../http/middleware/authenticate.js';
import type { EventBus } from './event-bus.js';
import { mayReceive, type LiveEvent } from './live-event.js';

export const WS_PATH = '/api/v1/ws';
export const WS_PROTOCOL = 'certctl.v1';
/** A key can ride in Sec-WebSocket-Protocol as `certctl.key.<key>`; it is never echoed back. */
const KEY_PROTOCOL_PREFIX = 'certctl.key.';

export interface LiveSocketOptions {
  heartbeatMs: number;
  authTimeoutMs: number;
  /** Bytes a slow client may have queued before it is told to resync instead of being sent more. */
  maxBufferedBytes: number;
  maxClients: number;
}

export const DEFAULT_LIVE_SOCKET_OPTIONS: LiveSocketOptions = { heartbeatMs: 30_000, authTimeoutMs: 10_000, maxBufferedBytes: 1 << 20, maxClients: 2000 };

interface Client {
  ws: WebSocket;
  principal: Principal | null;
  key: string | null;
  alive: boolean;
  dropped: number;
}

/** Close codes the dashboard understands: 4401 re-login, 4408 auth timeout; anything else: reconnect. */
export const CLOSE = { unauthenticated: 4401, authTimeout: 4408, serverFull: 4503, goingAway: 1001 } as const;

/**
 * The dashboard's live channel at /api/v1/ws. Authenticates with an API key (first
 * message `{"type":"auth","key":...}` or the `certctl.key.` subprotocol; never the
 * query string, which would land in access logs), then pushes every live event the
 * key may read. Keys are re-checked on each heartbeat, so a revoked key is cut off.
 */
export class LiveSocketServer {
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Client>();
  private heartbeat: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly deps: { bus: EventBus; knex: Knex; authType: 'api-key' | 'none'; log: Logger; options?: Partial<LiveSocketOptions> }) {
    this.opts = { ...DEFAULT_LIVE_SOCKET_OPTIONS, ...deps.options };
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: 16 * 1024,
      handleProtocols: (protocols) => (protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : false),
    });
  }

  private readonly opts: LiveSocketOptions;

  attach(server: EventEmitter): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== WS_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      if (this.clients.size >= this.opts.maxClients) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      void this.upgrade(req, socket, head);
    });
    this.unsubscribe = this.deps.bus.subscribe((e) => this.broadcast(e));
    this.heartbeat = setInterval(() => void this.beat(), this.opts.heartbeatMs);
    this.heartbeat.unref();
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    const keyProtocol = offered.find((p) => p.startsWith(KEY_PROTOCOL_PREFIX));
    let principal: Principal | null = null;
    let key: string | null = null;
    if (this.deps.authType === 'none') principal = ANONYMOUS_ADMIN;
    else if (keyProtocol) {
      key = keyProtocol.slice(KEY_PROTOCOL_PREFIX.length);
      principal = await authenticateApiKey(this.deps.knex, key).catch(() => null);
      if (!principal) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        return;
      }
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, principal, key));
  }

  private accept(ws: WebSocket, principal: Principal | null, key: string | null): void {
    const client: Client = { ws, principal, key, alive: true, dropped: 0 };
    this.clients.add(client);
    ws.on('pong', () => { client.alive = true; });
    ws.on('close', () => this.clients.delete(client));
    ws.on('error', () => ws.terminate());
    if (principal) {
      this.send(client, { type: 'ready', actor: principal.actor });
    } else {
      const timer = setTimeout(() => { if (!client.principal) ws.close(CLOSE.authTimeout, 'authentication timeout'); }, this.opts.authTimeoutMs);
      timer.unref();
      ws.on('close', () => clearTimeout(timer));
    }
    ws.on('message', (data) => void this.onMessage(client, data.toString()));
  }

  private async onMessage(client: Client, text: string): Promise<void> {
    let msg: { type?: unknown; key?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.type === 'ping') {
      this.send(client, { type: 'pong' });
      return;
    }
    if (msg.type !== 'auth' || client.principal) return;
    const key = typeof msg.key === 'string' ? msg.key : '';
    const principal = key ? await authenticateApiKey(this.deps.knex, key).catch(() => null) : null;
    if (!principal) {
      client.ws.close(CLOSE.unauthenticated, 'invalid, expired or revoked API key');
      return;
    }
    client.principal = principal;
    client.key = key;
    this.send(client, { type: 'ready', actor: principal.actor });
  }

  private broadcast(event: LiveEvent): void {
    // Serialized once for every receiver, not once per client.
    let frame: string | null = null;
    for (const client of this.clients) {
      if (!client.principal || !mayReceive(client.principal, event)) continue;
      frame ??= JSON.stringify({ type: 'event', event });
      this.sendBounded(client, frame);
    }
  }

  /**
   * A client that cannot keep up gets no more events until its queue drains; then
   * one `resync` tells it to refetch, instead of the kernel buffering without bound.
   */
  private sendBounded(client: Client, frame: string): void {
    if (client.ws.bufferedAmount > this.opts.maxBufferedBytes) {
      client.dropped += 1;
      return;
    }
    if (client.dropped) {
      this.send(client, { type: 'resync', dropped: client.dropped });
      client.dropped = 0;
    }
    this.send(client, frame);
  }

  /** Sends a message (or an already serialized frame) while the socket is open. */
  private send(client: Client, msg: unknown): void {
    if (client.ws.readyState === client.ws.OPEN) client.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  private async beat(): Promise<void> {
    for (const client of this.clients) {
      if (!client.alive) {
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
      if (client.dropped && client.ws.bufferedAmount <= this.opts.maxBufferedBytes) {
        this.send(client, { type: 'resync', dropped: client.dropped });
        client.dropped = 0;
      }
      if (client.key) {
        // Picks up revocation, expiry and role changes for long-lived sessions.
        const principal = await authenticateApiKey(this.deps.knex, client.key).catch(() => client.principal);
        if (!principal) client.ws.close(CLOSE.unauthenticated, 'API key no longer valid');
        else client.principal = principal;
      }
    }
  }

  get clientCount(): number {
    return this.clients.size;
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.unsubscribe?.();
    for (const client of this.clients) client.ws.close(CLOSE.goingAway, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    for (const client of this.clients) client.ws.terminate();
    this.clients.clear();
  }
}
