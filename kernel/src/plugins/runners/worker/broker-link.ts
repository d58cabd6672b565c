import { MessageChannel, parentPort, type MessagePort } from 'node:worker_threads';
import { BROKER_PORT_KEY, type BrokerReplyMessage, type BrokerRequestBody } from './protocol.js';

type ReplyListener = (msg: BrokerReplyMessage) => void;

/** This thread's broker port (broker-ports.ts is the kernel's end) and the calls on it waiting for answers, by token. */
let link: { port: MessagePort; calls: Map<string, ReplyListener> } | null = null;

function threadLink(): NonNullable<typeof link> {
  if (!link) {
    if (!parentPort) throw new Error('the plugin worker runs outside a worker thread');
    const { port1, port2 } = new MessageChannel();
    const calls = new Map<string, ReplyListener>();
    port1.on('message', (msg: (BrokerReplyMessage & { t?: unknown }) | null) => {
      if (msg && typeof msg.t === 'string') calls.get(msg.t)?.(msg);
    });
    port1.unref();
    // Piscina hands messages other than its own to the pool's 'message' event, where the runner takes the port.
    parentPort.postMessage({ [BROKER_PORT_KEY]: port2 }, [port2]);
    link = { port: port1, calls };
  }
  return link;
}

/**
 * A call's end of its thread's broker port: posts its requests with its token
 * and hands it the answers carrying that token. The port is opened with the
 * thread's first host call and shared by the calls that run on the thread.
 */
export function brokerLink(token: string, onReply: ReplyListener): { post(msg: BrokerRequestBody): void; close(): void } {
  const l = threadLink();
  l.calls.set(token, onReply);
  return {
    post: (msg) => l.port.postMessage({ ...msg, t: token }),
    close: () => { l.calls.delete(token); },
  };
}
