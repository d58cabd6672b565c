import { MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import { pooledRandomBytes } from '../../../crypto/random-pool.js';
import { PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker } from '../../host/contracts.js';
import { BROKER_PORT_KEY, type BrokerReplyMessage, type BrokerRequestMessage } from './protocol.js';

/** More ops than this in one call means a runaway plugin; the rest are refused. */
const MAX_OPS_PER_CALL = 10_000;

interface OpenCall {
  ctx: BrokerCallContext;
  ops: number;
  /** The port of the thread the call runs on: the first that used its token; no other may. */
  port?: MessagePort;
}

/**
 * The kernel's end of a worker plugin runner's broker ports. A plugin call's
 * context members send BrokerOps and get the answers back; every op goes
 * through the broker, which checks the grants, and errors go back to the plugin
 * as data (the plugin decides whether to catch them).
 *
 * Each worker thread opens one port, the first time one of its calls needs the
 * host, and hands it over on its parentPort (Piscina passes such messages to the
 * pool's 'message' event, whence attach()). A MessageChannel made, transferred
 * and closed with every call cost as much CPU as the rest of the call's hand-off
 * (docs/benchmarks.md), and most calls (an issuer answering with a sign order)
 * make no host call at all. Calls are told apart by a random token the kernel
 * hands each call with its task: an op is served in the context of the call
 * whose token it carries, only while that call is open, and only from the port
 * that used the token first (the thread running the call); anything else is not
 * answered. A token travels only in its own task and over its own thread's port,
 * so a thread never sees the calls of another thread. Calls sharing a thread
 * (protocol plugins, `workerConcurrency`) share its memory too, so first-party
 * code there could reach each other's tokens, as it could each other's ports before.
 */
export class BrokerPorts {
  private readonly calls = new Map<string, OpenCall>();
  private readonly ports = new Set<MessagePort>();

  constructor(private readonly broker: CapabilityBroker, private readonly log: Logger) {}

  /** Opens a call: ops carrying the returned token are served in `ctx` until `end()`; answers to ops still in flight then are dropped. */
  open(ctx: BrokerCallContext): { token: string; end(): void } {
    const token = pooledRandomBytes(16).toString('base64url');
    const call: OpenCall = { ctx, ops: 0 };
    this.calls.set(token, call);
    return { token, end: () => { if (this.calls.get(token) === call) this.calls.delete(token); } };
  }

  /** Serves the port a worker thread announced (a message from its parentPort); anything else is ignored. */
  attach(message: unknown): void {
    const port = message && typeof message === 'object' ? (message as Record<string, unknown>)[BROKER_PORT_KEY] : undefined;
    if (!(port instanceof MessagePort)) return;
    this.ports.add(port);
    port.on('message', (msg: BrokerRequestMessage) => this.receive(port, msg));
    port.on('close', () => this.ports.delete(port));
    // The runner's lifetime, not its threads' ports, keeps the process alive.
    port.unref();
  }

  close(): void {
    this.calls.clear();
    for (const port of this.ports) port.close();
    this.ports.clear();
  }

  private reply(port: MessagePort, token: string, msg: BrokerReplyMessage): void {
    // The call ended while its op ran: its worker context no longer waits for this.
    if (!this.calls.has(token)) return;
    try {
      port.postMessage({ ...msg, t: token });
    } catch (err) {
      this.log.debug({ err }, 'plugin worker port closed before a reply');
    }
  }

  private receive(port: MessagePort, msg: BrokerRequestMessage): void {
    const token = typeof msg?.t === 'string' ? msg.t : '';
    const call = this.calls.get(token);
    if (!call) return;
    call.port ??= port;
    if (call.port !== port) return;
    const id = typeof msg.id === 'number' ? msg.id : undefined;
    if (id !== undefined && 'flush' in msg) return this.reply(port, token, { id, ok: true, value: null });
    if (++call.ops > MAX_OPS_PER_CALL) {
      if (id !== undefined) this.reply(port, token, { id, ok: false, hostRefusal: true, code: 'capability_denied', message: `more than ${MAX_OPS_PER_CALL} host calls in one plugin call` });
      return;
    }
    const op = (msg as { op?: BrokerOp }).op;
    this.broker.handle(call.ctx, op as BrokerOp).then(
      (value) => { if (id !== undefined) this.reply(port, token, { id, ok: true, value }); },
      (err: unknown) => {
        if (id === undefined) return;
        if (err instanceof PluginCallError) this.reply(port, token, { id, ok: false, hostRefusal: true, code: err.code, message: err.message });
        else {
          const e = err as { message?: unknown; code?: unknown };
          this.reply(port, token, { id, ok: false, hostRefusal: false, code: typeof e?.code === 'string' ? e.code : undefined, message: typeof e?.message === 'string' ? e.message : String(err) });
        }
      },
    );
  }
}
