import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { Json } from '@certctl/sdk';
import type { BrokerCallContext, BrokerOp, CapabilityBroker } from '../../../kernel/src/plugins/host/contracts.js';
import { BrokerPorts } from '../../../kernel/src/plugins/runners/worker/broker-ports.js';
import { BROKER_PORT_KEY } from '../../../kernel/src/plugins/runners/worker/protocol.js';
import { sleep, waitFor } from '../../support/wait.js';

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

describe('BrokerPorts (the kernel end of a worker plugin runner\'s broker ports)', () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });

  /** A worker thread's side: it hands the kernel one end of a channel, as broker-link.ts does, and collects the answers. */
  function thread(ports: BrokerPorts) {
    const { port1, port2 } = new MessageChannel();
    open.push(port1);
    ports.attach({ [BROKER_PORT_KEY]: port2 });
    const received: Record<string, unknown>[] = [];
    port1.on('message', (msg) => received.push(msg as Record<string, unknown>));
    return { post: (msg: unknown) => port1.postMessage(msg), received, port: port1 as MessagePort };
  }

  function setup() {
    const b = instanceBroker();
    const ports = new BrokerPorts(b.broker, log);
    open.push(ports);
    return { b, ports };
  }

  it('serves each op in the context of the call whose token it carries, and answers with that token', async () => {
    const { b, ports } = setup();
    const a = ports.open(ctxFor('inst-a'));
    const c = ports.open(ctxFor('inst-c'));
    expect(a.token).not.toBe(c.token);
    const worker = thread(ports);
    worker.post({ t: a.token, id: 1, op: { op: 'kv.get', key: 'k' } });
    worker.post({ t: c.token, id: 1, op: { op: 'kv.get', key: 'k' } });
    await waitFor('the answers', () => worker.received.length === 2);
    expect(b.handled.map((h) => h.instanceId)).toEqual(['inst-a', 'inst-c']);
    expect(worker.received).toEqual(expect.arrayContaining([
      { t: a.token, id: 1, ok: true, value: { instance: 'inst-a' } },
      { t: c.token, id: 1, ok: true, value: { instance: 'inst-c' } },
    ]));
  });

  it('answers a call on the port of the thread that asked, never on another thread\'s', async () => {
    const { ports } = setup();
    const one = thread(ports);
    const two = thread(ports);
    const call = ports.open(ctxFor('inst-a'));
    one.post({ t: call.token, id: 7, op: { op: 'kv.get', key: 'k' } });
    await waitFor('the answer', () => one.received.length === 1);
    await sleep(50);
    expect(one.received).toEqual([{ t: call.token, id: 7, ok: true, value: { instance: 'inst-a' } }]);
    expect(two.received).toEqual([]);
  });

  it('serves a call only from the port that used its token first: another thread cannot borrow it', async () => {
    const { b, ports } = setup();
    const one = thread(ports);
    const two = thread(ports);
    const call = ports.open(ctxFor('inst-a'));
    one.post({ t: call.token, id: 1, op: { op: 'kv.get', key: 'k' } });
    await waitFor('the answer', () => one.received.length === 1);
    two.post({ t: call.token, id: 2, op: { op: 'kv.get', key: 'stolen' } });
    one.post({ t: call.token, id: 3, flush: true });
    await waitFor('the flush', () => one.received.length === 2);
    await sleep(50);
    expect(two.received).toEqual([]);
    expect(b.handled.map((h) => (h.op as { key?: string }).key)).toEqual(['k']);
  });

  it('does not serve an op with an unknown or missing token, nor a message that is not a port', async () => {
    const { b, ports } = setup();
    ports.attach({ [BROKER_PORT_KEY]: 'not a port' });
    ports.attach(null);
    const call = ports.open(ctxFor('inst-a'));
    const worker = thread(ports);
    worker.post({ t: 'forged-token', id: 1, op: { op: 'kv.get', key: 'k' } });
    worker.post({ id: 2, op: { op: 'kv.get', key: 'k' } });
    worker.post({ t: call.token, id: 3, flush: true });
    // The flush is answered after everything posted before it was looked at.
    await waitFor('the flush', () => worker.received.length === 1);
    expect(worker.received).toEqual([{ t: call.token, id: 3, ok: true, value: null }]);
    expect(b.handled).toEqual([]);
  });

  it('stops serving a call once it ended, and drops the answer to an op still running then', async () => {
    const { b, ports } = setup();
    const call = ports.open(ctxFor('inst-a'));
    const worker = thread(ports);
    b.holdAnswers();
    worker.post({ t: call.token, id: 1, op: { op: 'kv.get', key: 'k' } });
    await waitFor('the op to reach the broker', () => b.held.length === 1);
    call.end();
    b.held[0]();
    worker.post({ t: call.token, id: 2, op: { op: 'kv.get', key: 'k' } });
    const later = ports.open(ctxFor('inst-b'));
    worker.post({ t: later.token, id: 1, flush: true });
    await waitFor('the flush', () => worker.received.length === 1);
    expect(worker.received).toEqual([{ t: later.token, id: 1, ok: true, value: null }]);
    expect(b.handled).toHaveLength(1);
  });
});
