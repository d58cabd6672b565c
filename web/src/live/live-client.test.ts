import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveClient, type LiveEvent } from './live-client';

/** A scriptable stand-in for the browser WebSocket. */
class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  closedWith: number | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string, readonly protocols: string[]) {
    FakeSocket.all.push(this);
  }
  send(data: string): void { this.sent.push(data); }
  close(code = 1000): void { this.closedWith = code; this.readyState = 3; }
  // Server side of the script:
  open(): void { this.readyState = 1; this.onopen?.({}); }
  receive(msg: unknown): void { this.onmessage?.({ data: JSON.stringify(msg) }); }
  drop(code = 1006): void { this.readyState = 3; this.onclose?.({ code }); }
}

const EVENT: LiveEvent = { seq: 7, topic: 'job', action: 'job_completed', resource_id: 'job-1', actor: 'system', category: 'lifecycle', occurred_at: '2026-01-01T00:00:00Z', hints: {} };

function client(opts: Partial<ConstructorParameters<typeof LiveClient>[0]> = {}) {
  return new LiveClient({
    url: 'wss://certctl.test/api/v1/ws',
    getKey: () => 'cctl_secret',
    createSocket: (url, protocols) => new FakeSocket(url, protocols),
    initialBackoffMs: 100,
    maxBackoffMs: 1000,
    keepaliveMs: 1000,
    random: () => 1,
    ...opts,
  });
}

beforeEach(() => {
  FakeSocket.all = [];
  vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

describe('LiveClient', () => {
  it('authenticates with a first message, never in the URL, and delivers events', () => {
    const c = client();
    const events: LiveEvent[] = [];
    c.onEvent((e) => events.push(e));
    c.start();
    const s = FakeSocket.all[0];
    expect(s.url).toBe('wss://certctl.test/api/v1/ws');
    expect(s.url).not.toContain('cctl_secret');
    expect(s.protocols).toEqual(['certctl.v1']);
    s.open();
    expect(JSON.parse(s.sent[0])).toEqual({ type: 'auth', key: 'cctl_secret' });
    s.receive({ type: 'ready', actor: 'key-1' });
    expect(c.status).toBe('open');
    s.receive({ type: 'event', event: EVENT });
    expect(events).toEqual([EVENT]);
  });

  it('reconnects with growing, capped backoff and resyncs after the reconnect only', () => {
    const c = client();
    const resyncs: string[] = [];
    c.onResync((r) => resyncs.push(r));
    c.start();
    FakeSocket.all[0].open();
    FakeSocket.all[0].receive({ type: 'ready' });
    expect(resyncs).toEqual([]);

    FakeSocket.all[0].drop();
    expect(c.status).toBe('reconnecting');
    vi.advanceTimersByTime(99);
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(2);
    // The server is still down: the next waits double.
    FakeSocket.all[1].drop();
    vi.advanceTimersByTime(199);
    expect(FakeSocket.all).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(3);
    FakeSocket.all[2].open();
    FakeSocket.all[2].receive({ type: 'ready' });
    expect(c.status).toBe('open');
    expect(resyncs).toEqual(['reconnected']);
    // Backoff resets after a good connection.
    FakeSocket.all[2].drop();
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all).toHaveLength(4);
  });

  it('caps the backoff and applies jitter', () => {
    const c = client({ random: () => 0 });
    expect(c.backoffDelay(0)).toBe(50);
    expect(c.backoffDelay(20)).toBe(500);
    const d = client({ random: () => 1 });
    expect(d.backoffDelay(20)).toBe(1000);
  });

  it('asks views to resync when the server reports dropped events', () => {
    const c = client();
    const resyncs: string[] = [];
    c.onResync((r) => resyncs.push(r));
    c.start();
    FakeSocket.all[0].open();
    FakeSocket.all[0].receive({ type: 'ready' });
    FakeSocket.all[0].receive({ type: 'resync', dropped: 12 });
    expect(resyncs).toEqual(['dropped']);
  });

  it('stops on 4401 (key rejected or revoked) instead of retrying', () => {
    const c = client();
    c.start();
    FakeSocket.all[0].open();
    FakeSocket.all[0].drop(4401);
    expect(c.status).toBe('unauthorized');
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('pings while idle and treats a silent connection as dead', () => {
    const c = client();
    c.start();
    const s = FakeSocket.all[0];
    s.open();
    s.receive({ type: 'ready' });
    vi.advanceTimersByTime(1000);
    expect(s.sent.map((m) => JSON.parse(m).type)).toContain('ping');
    vi.advanceTimersByTime(2000);
    expect(s.closedWith).toBe(4000);
    expect(c.status).toBe('reconnecting');
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it('stop() closes and never reconnects', () => {
    const c = client();
    c.start();
    FakeSocket.all[0].open();
    c.stop();
    expect(FakeSocket.all[0].closedWith).toBe(1000);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(c.status).toBe('closed');
  });
});
