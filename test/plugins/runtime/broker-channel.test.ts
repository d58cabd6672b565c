import { BroadcastChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { Json } from '@certctl/sdk';
import type { BrokerCallContext, BrokerOp, CapabilityBroker } from '../../../kernel/src/plugins/host/contracts.js';
import { BrokerChannel } from '../../../kernel/src/plugins/runners/worker/broker-channel.js';
import { waitFor } from '../../support/wait.js';

const log = pino({ level: 'silent' });
const ctxFor = (instanceId: string): BrokerCallContext => ({ pluginId: 'p', instanceId, grants: {} as BrokerCallContext['grants'], deadline: Date.now() + 10_000 });

/** A broker that answers with the instance it was asked in, and can hold answers back. */
function instanceBroker() {
  const handled: { instanceId: string | null; op: BrokerOp }[] = [];
  const held: (() => void)[] = [];
  let hold = false;
  const broker: CapabilityBroker = {
    handle: (ctx, op) => {
      handled.push({ instanceId: ctx.instanceId, op });
      const answer = { instance: ctx.instanceId } as Json;
      if (!hold) return Promise.resolve(answer);
      return new Promise((resolve) => held.push(() => resolve(answer)));
    },
  };
  return { broker, handled, held, holdAnswers: () => { hold = true; } };
}

describe('BrokerChannel (the kernel end of a worker plugin runner\'s broker channel)', () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });

  /** The worker's side: another instance of the channel, collecting what comes back. */
  function workerSide(name: string) {
    const side = new BroadcastChannel(name);
    open.push(side);
    const received: Record<string, unknown>[] = [];
    side.onmessage = (event) => received.push((event as MessageEvent).data as Record<string, unknown>);
    return { post: (msg: unknown) => side.postMessage(msg), received };
  }

  it('serves each op in the context of the call whose token it carries, and answers with that token', async () => {
    const b = instanceBroker();
    const channel = new BrokerChannel('p', b.broker, log);
    open.push(channel);
    const a = channel.open(ctxFor('inst-a'));
    const c = channel.open(ctxFor('inst-c'));
    expect(a.token).not.toBe(c.token);
    const worker = workerSide(channel.name);
    worker.post({ t: a.token, id: 1, op: { op: 'kv.get', key: 'k' } });
    worker.post({ t: c.token, id: 1, op: { op: 'kv.get', key: 'k' } });
    await waitFor('the answers', () => worker.received.length === 2);
    expect(b.handled.map((h) => h.instanceId)).toEqual(['inst-a', 'inst-c']);
    expect(worker.received).toEqual(expect.arrayContaining([
      { t: a.token, id: 1, ok: true, value: { instance: 'inst-a' } },
      { t: c.token, id: 1, ok: true, value: { instance: 'inst-c' } },
    ]));
  });

  it('does not serve an op with an unknown or missing token', async () => {
    const b = instanceBroker();
    const channel = new BrokerChannel('p', b.broker, log);
    open.push(channel);
    const call = channel.open(ctxFor('inst-a'));
    const worker = workerSide(channel.name);
    worker.post({ t: 'forged-token', id: 1, op: { op: 'kv.get', key: 'k' } });
    worker.post({ id: 2, op: { op: 'kv.get', key: 'k' } });
    worker.post({ t: call.token, id: 3, flush: true });
    // The flush is answered after everything posted before it was looked at.
    await waitFor('the answers', () => worker.received.length === 1);
    expect(worker.received).toEqual([{ t: call.token, id: 3, ok: true, value: null }]);
    expect(b.handled).toEqual([]);
  });

  it('stops serving a call once it ended, and drops the answer to an op still running then', async () => {
    const b = instanceBroker();
    const channel = new BrokerChannel('p', b.broker, log);
    open.push(channel);
    const call = channel.open(ctxFor('inst-a'));
    const worker = workerSide(channel.name);
    b.holdAnswers();
    worker.post({ t: call.token, id: 1, op: { op: 'kv.get', key: 'k' } });
    await waitFor('the op to reach the broker', () => b.held.length === 1);
    call.end();
    b.held[0]();
    worker.post({ t: call.token, id: 2, op: { op: 'kv.get', key: 'k' } });
    const later = channel.open(ctxFor('inst-b'));
    worker.post({ t: later.token, id: 1, flush: true });
    await waitFor('the answers', () => worker.received.length === 1);
    expect(worker.received).toEqual([{ t: later.token, id: 1, ok: true, value: null }]);
    expect(b.handled).toHaveLength(1);
  });
});
