import { BroadcastChannel } from 'node:worker_threads';
import type { Logger } from 'pino';
import { pooledRandomBytes } from '../../../crypto/random-pool.js';
import { PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker } from '../../host/contracts.js';
import type { BrokerReplyMessage, BrokerRequestMessage } from './protocol.js';

/** More ops than this in one call means a runaway plugin; the rest are refused. */
const MAX_OPS_PER_CALL = 10_000;

interface OpenCall {
  ctx: BrokerCallContext;
  ops: number;
}

/**
 * The kernel's end of one worker plugin's broker channel. A plugin call's
 * context members send BrokerOps here and get the answers back; every op goes
 * through the broker, which checks the grants, and errors go back to the plugin
 * as data (the plugin decides whether to catch them).
 *
 * One named BroadcastChannel per runner rather than a MessagePort per call: a
 * MessageChannel made and transferred with every call cost as much CPU as the
 * rest of the call's hand-off together (docs/benchmarks.md), and most calls
 * (an issuer answering with a sign order) make no host call at all. Calls are
 * told apart by a random token the kernel hands each call with its task: an op
 * is served in the context of the call whose token it carries, only while that
 * call is open, and an unknown token is not answered. The channel is reachable
 * by name from any thread of this process, which only first-party code (this
 * runner's tier) can open; sandboxed plugins cannot.
 */
export class BrokerChannel {
  /** The channel's name, handed to the worker with every task. */
  readonly name: string;
  private readonly channel: BroadcastChannel;
  private readonly calls = new Map<string, OpenCall>();

  constructor(pluginId: string, private readonly broker: CapabilityBroker, private readonly log: Logger) {
    this.name = `certctl-broker:${pluginId}:${pooledRandomBytes(12).toString('hex')}`;
    this.channel = new BroadcastChannel(this.name);
    // The runner's lifetime, not this channel, keeps the process alive.
    this.channel.unref();
    this.channel.onmessage = (event) => this.receive((event as MessageEvent).data as BrokerRequestMessage);
  }

  /** Opens a call: ops carrying the returned token are served in `ctx` until `end()`; answers to ops still in flight then are dropped. */
  open(ctx: BrokerCallContext): { token: string; end(): void } {
    const token = pooledRandomBytes(16).toString('base64url');
    const call: OpenCall = { ctx, ops: 0 };
    this.calls.set(token, call);
    return { token, end: () => { if (this.calls.get(token) === call) this.calls.delete(token); } };
  }

  close(): void {
    this.calls.clear();
    this.channel.close();
  }

  private reply(token: string, msg: BrokerReplyMessage): void {
    // The call ended while its op ran: its worker context no longer waits for this.
    if (!this.calls.has(token)) return;
    try {
      this.channel.postMessage({ ...msg, t: token });
    } catch (err) {
      this.log.debug({ err }, 'plugin broker channel closed before a reply');
    }
  }

  private receive(msg: BrokerRequestMessage): void {
    const token = typeof msg?.t === 'string' ? msg.t : '';
    const call = this.calls.get(token);
    if (!call) return;
    const id = typeof msg.id === 'number' ? msg.id : undefined;
    if (id !== undefined && 'flush' in msg) return this.reply(token, { id, ok: true, value: null });
    if (++call.ops > MAX_OPS_PER_CALL) {
      if (id !== undefined) this.reply(token, { id, ok: false, hostRefusal: true, code: 'capability_denied', message: `more than ${MAX_OPS_PER_CALL} host calls in one plugin call` });
      return;
    }
    const op = (msg as { op?: BrokerOp }).op;
    this.broker.handle(call.ctx, op as BrokerOp).then(
      (value) => { if (id !== undefined) this.reply(token, { id, ok: true, value }); },
      (err: unknown) => {
        if (id === undefined) return;
        if (err instanceof PluginCallError) this.reply(token, { id, ok: false, hostRefusal: true, code: err.code, message: err.message });
        else {
          const e = err as { message?: unknown; code?: unknown };
          this.reply(token, { id, ok: false, hostRefusal: false, code: typeof e?.code === 'string' ? e.code : undefined, message: typeof e?.message === 'string' ? e.message : String(err) });
        }
      },
    );
  }
}
