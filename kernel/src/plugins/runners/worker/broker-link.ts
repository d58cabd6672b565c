import { BroadcastChannel } from 'node:worker_threads';
import type { BrokerReplyMessage, BrokerRequestBody } from './protocol.js';

type ReplyListener = (msg: BrokerReplyMessage) => void;

interface Link {
  channel: BroadcastChannel;
  /** The calls on this thread waiting for answers, by token. */
  calls: Map<string, ReplyListener>;
}

/** This thread's end of each runner channel it has used (one per plugin pool in practice). */
const links = new Map<string, Link>();

function linkNamed(name: string): Link {
  let link = links.get(name);
  if (!link) {
    const channel = new BroadcastChannel(name);
    channel.unref();
    const calls = new Map<string, ReplyListener>();
    channel.onmessage = (event) => {
      const msg = (event as MessageEvent).data as (BrokerReplyMessage & { t?: unknown }) | null;
      // Sibling threads' requests arrive here too: only answers ('ok') to this thread's calls count.
      if (!msg || typeof msg !== 'object' || !('ok' in msg) || typeof msg.t !== 'string') return;
      calls.get(msg.t)?.(msg);
    };
    link = { channel, calls };
    links.set(name, link);
  }
  return link;
}

/**
 * A worker-thread call's end of the runner's broker channel (broker-channel.ts
 * is the kernel's): posts its requests with its token and hands it the answers
 * carrying that token. The thread's channel is opened on first use and shared
 * by the calls running on it.
 */
export function brokerLink(name: string, token: string, onReply: ReplyListener): { post(msg: BrokerRequestBody): void; close(): void } {
  const link = linkNamed(name);
  link.calls.set(token, onReply);
  return {
    post: (msg) => link.channel.postMessage({ ...msg, t: token }),
    close: () => { link.calls.delete(token); },
  };
}
