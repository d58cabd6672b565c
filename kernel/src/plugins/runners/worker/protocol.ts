import type { Json } from '@certctl/sdk';
import type { BrokerOp, PluginFailureCode } from '../../host/contracts.js';

/**
 * Messages between the kernel thread and a plugin worker thread. A call is one
 * Piscina task carrying the call's token, with which the plugin's context
 * members send BrokerOps over their thread's broker port and receive answers
 * (broker-ports.ts, broker-link.ts). Only structured-clone data crosses, and
 * results travel as JSON text so the size cap is exact.
 */

/** The key of the message a worker thread posts on its parentPort to hand the kernel its broker port. */
export const BROKER_PORT_KEY = 'certctlBrokerPort';

export interface PluginTask {
  pluginId: string;
  /** file:// URL of the plugin's worker entry, already resolved inside the plugin directory. */
  entryUrl: string;
  /** The kind the manifest declares; the module's default export must agree. */
  kind: string;
  maxResultBytes: number;
  method: string;
  request: Json;
  config: Record<string, Json>;
  instanceId: string | null;
  deadline: number;
  /** This call's token on the thread's broker port. */
  token: string;
}

/**
 * `logs`: log lines the call made that were not posted yet; the kernel handles
 * them with the outcome (one message instead of a line and a flush round trip).
 */
export type PluginTaskOutcome =
  | { ok: true; json: string; logs?: BrokerOp[] }
  | { ok: false; code: PluginFailureCode; message: string; logs?: BrokerOp[] };

/**
 * Worker -> kernel, `t` being the call's token. `id` is absent for
 * fire-and-forget ops (log lines). A `flush` (no op) is answered once
 * everything sent before it was handled: the worker sends one before returning
 * when lines went out that no later reply confirmed, so no log line is lost to
 * the call ending.
 */
export type BrokerRequestBody = { id?: number; op: BrokerOp } | { id: number; flush: true };
export type BrokerRequestMessage = BrokerRequestBody & { t: string };

/**
 * Kernel -> worker (sent with the call's token `t` added). `code` is a
 * PluginFailureCode for host refusals, an errno-like code or absent otherwise.
 */
export type BrokerReplyMessage =
  | { id: number; ok: true; value: Json }
  | { id: number; ok: false; message: string; code?: string; hostRefusal: boolean };
