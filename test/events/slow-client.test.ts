import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { LiveTestClient } from './ws-client.js';

/**
 * A client that stops reading must not make the kernel buffer without bound: past
 * the per-client cap its events are dropped, and once it drains it is told to
 * resync (refetch) instead.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('live events: bounded per-client buffer', () => {
  let t: TestKernel;
  let c: LiveTestClient;

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' }, start: { liveSocket: { heartbeatMs: 10_000, maxBufferedBytes: 16 * 1024 } } });
  });
  afterAll(async () => {
    c?.ws.terminate();
    await t?.stop();
  });

  it('drops events for a stalled reader past the cap, then asks it to resync', async () => {
    c = new LiveTestClient(t.kernel.url, t.dataDir);
    await c.authenticate(t.adminKey);
    const socket = (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const rows = Array.from({ length: 20_000 }, (_, i) => ({
      category: 'lifecycle' as const, actor: 'system', actor_type: 'system', action: 'team_updated', resource_type: 'team', resource_id: `team-flood-${i}`, details: { note: 'x'.repeat(100) },
    }));
    await t.kernel.audit.append(rows);
    await new Promise((r) => setTimeout(r, 300));
    socket.resume();
    // Once drained, the next event is preceded by the resync notice.
    await new Promise((r) => setTimeout(r, 500));
    await t.kernel.audit.append({ ...rows[0], resource_id: 'team-after-drain' });
    await c.waitFor((m) => m.event?.resource_id === 'team-after-drain', 20_000);
    const resync = c.messages.find((m) => m.type === 'resync')!;
    expect(resync).toBeDefined();
    expect(resync.dropped).toBeGreaterThan(0);
    expect(c.events().length + Number(resync.dropped)).toBe(20_001);
    expect(c.events().length).toBeLessThan(20_001);
    const order = c.messages.map((m) => m.type === 'resync' ? 'resync' : m.event?.resource_id);
    expect(order.indexOf('resync')).toBe(order.indexOf('team-after-drain') - 1);
  });
});
