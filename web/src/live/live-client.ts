/** A live event as the kernel pushes it (see kernel/src/events/live-event.ts). */
export interface LiveEvent {
  seq: number;
  topic: string;
  action: string;
  resource_id: string;
  actor: string;
  category: string;
  occurred_at: string;
  hints: Record<string, string | null>;
}

export type LiveStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'unauthorized' | 'closed';

interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type SocketFactory = (url: string, protocols: string[]) => SocketLike;

export interface LiveClientOptions {
  url: string;
  getKey: () => string | null;
  createSocket?: SocketFactory;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Send an application ping this often; a connection silent for 2.5x this is presumed dead. */
  keepaliveMs?: number;
  random?: () => number;
}

const UNAUTHORIZED = 4401;

/**
 * One WebSocket to /api/v1/ws. Authenticates with the first message (so the key
 * never appears in a URL), reconnects with capped exponential backoff and jitter,
 * and announces a `resync` after every reconnect (and when the server says it
 * dropped events) so views refetch what they show: events missed while
 * disconnected are not replayed, the REST API is the source of truth.
 */
export class LiveClient {
  status: LiveStatus = 'idle';
  private socket: SocketLike | null = null;
  private attempt = 0;
  private everReady = false;
  private stopped = true;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private keepaliveTimer: ReturnType<typeof setInterval> | null = null;
  private lastMessageAt = 0;
  private readonly eventListeners = new Set<(e: LiveEvent) => void>();
  private readonly resyncListeners = new Set<(reason: string) => void>();
  private readonly statusListeners = new Set<(s: LiveStatus) => void>();
  private readonly opts: Required<LiveClientOptions>;

  constructor(opts: LiveClientOptions) {
    this.opts = {
      createSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as SocketLike,
      initialBackoffMs: 500,
      maxBackoffMs: 30_000,
      keepaliveMs: 20_000,
      random: Math.random,
      ...opts,
    };
  }

  onEvent(fn: (e: LiveEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  onResync(fn: (reason: string) => void): () => void {
    this.resyncListeners.add(fn);
    return () => this.resyncListeners.delete(fn);
  }

  onStatus(fn: (s: LiveStatus) => void): () => void {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.everReady = false;
    this.attempt = 0;
    this.clearTimers();
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.close(1000, 'client closed');
    }
    this.setStatus('closed');
  }

  /** Delay before reconnect attempt n (0-based): doubling, capped, with up to 50% jitter removed. */
  backoffDelay(attempt: number): number {
    const base = Math.min(this.opts.maxBackoffMs, this.opts.initialBackoffMs * 2 ** attempt);
    return Math.round(base * (0.5 + this.opts.random() * 0.5));
  }

  private setStatus(s: LiveStatus): void {
    if (this.status === s) return;
    this.status = s;
    this.statusListeners.forEach((fn) => fn(s));
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.retryTimer = null;
    this.keepaliveTimer = null;
  }

  private open(): void {
    this.setStatus(this.everReady ? 'reconnecting' : 'connecting');
    const socket = this.opts.createSocket(this.opts.url, ['certctl.v1']);
    this.socket = socket;
    socket.onopen = () => {
      this.lastMessageAt = Date.now();
      const key = this.opts.getKey();
      socket.send(JSON.stringify(key ? { type: 'auth', key } : { type: 'hello' }));
    };
    socket.onmessage = (ev) => this.onMessage(String(ev.data));
    socket.onerror = () => {};
    socket.onclose = (ev) => this.onClose(socket, ev.code);
  }

  private onMessage(text: string): void {
    this.lastMessageAt = Date.now();
    let msg: { type?: string; event?: LiveEvent; dropped?: number };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.type === 'ready') {
      const wasReconnect = this.everReady;
      this.everReady = true;
      this.attempt = 0;
      this.setStatus('open');
      this.startKeepalive();
      if (wasReconnect) this.resyncListeners.forEach((fn) => fn('reconnected'));
    } else if (msg.type === 'event' && msg.event) {
      const e = msg.event;
      this.eventListeners.forEach((fn) => fn(e));
    } else if (msg.type === 'resync') {
      this.resyncListeners.forEach((fn) => fn('dropped'));
    }
  }

  private startKeepalive(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = setInterval(() => {
      const s = this.socket;
      if (!s) return;
      if (Date.now() - this.lastMessageAt > this.opts.keepaliveMs * 2.5) {
        // Silent too long: the path is dead even if the socket has not noticed.
        s.onclose = null;
        s.close(4000, 'keepalive timeout');
        this.onClose(s, 4000);
        return;
      }
      if (s.readyState === 1) s.send(JSON.stringify({ type: 'ping' }));
    }, this.opts.keepaliveMs);
  }

  private onClose(socket: SocketLike, code: number): void {
    if (socket !== this.socket) return;
    this.socket = null;
    this.clearTimers();
    if (this.stopped) return;
    if (code === UNAUTHORIZED) {
      this.setStatus('unauthorized');
      this.stopped = true;
      return;
    }
    const delay = this.backoffDelay(this.attempt);
    this.attempt += 1;
    this.setStatus('reconnecting');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.open();
    }, delay);
  }
}
