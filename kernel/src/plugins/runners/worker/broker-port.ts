import type { MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import { PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker } from '../../host/contracts.js';
import type { BrokerReplyMessage, BrokerRequestMessage } from './protocol.js';

/** More ops than this in one call means a runaway plugin; the rest are refused. */
const MAX_OPS_PER_CALL = 10_000;

/**
 * Answers the BrokerOps a worker sends during one call. Every op goes through
 * the broker, which checks the grants; errors go back to the plugin as data
 * (the plugin decides whether to catch them). Returns a function that stops
 * serving; replies to ops still in flight after that are dropped.
 */
export function serveBrokerPort(port: MessagePort, broker: CapabilityBroker, ctx: BrokerCallContext, log: Logger): () => void {
  let open = true;
  let ops = 0;
  const reply = (msg: BrokerReplyMessage) => {
    if (!open) return;
    try {
      port.postMessage(msg);
    } catch (err) {
      log.debug({ err }, 'plugin worker port closed before a reply');
    }
  };
  port.on('message', (msg: BrokerRequestMessage) => {
    const id = typeof msg?.id === 'number' ? msg.id : undefined;
    if (id !== undefined && 'flush' in msg) return reply({ id, ok: true, value: null });
    if (++ops > MAX_OPS_PER_CALL) {
      if (id !== undefined) reply({ id, ok: false, hostRefusal: true, code: 'capability_denied', message: `more than ${MAX_OPS_PER_CALL} host calls in one plugin call` });
      return;
    }
    const op = (msg as { op?: BrokerOp })?.op;
    broker.handle(ctx, op as BrokerOp).then(
      (value) => { if (id !== undefined) reply({ id, ok: true, value }); },
      (err: unknown) => {
        if (id === undefined) return;
        if (err instanceof PluginCallError) reply({ id, ok: false, hostRefusal: true, code: err.code, message: err.message });
        else {
          const e = err as { message?: unknown; code?: unknown };
          reply({ id, ok: false, hostRefusal: false, code: typeof e?.code === 'string' ? e.code : undefined, message: typeof e?.message === 'string' ? e.message : String(err) });
        }
      },
    );
  });
  port.start();
  return () => {
    open = false;
    port.removeAllListeners('message');
    port.close();
  };
}
