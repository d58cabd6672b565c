import { ISSUANCE_METHODS, type IssuanceMethod, type Json, type PluginCapabilities } from '@certctl/sdk';

/**
 * Kernel-side contracts of the plugin host. A runner executes plugin methods in
 * some isolation tier; whatever the tier, the plugin gets a PluginContext whose
 * members turn into BrokerOps that the kernel's CapabilityBroker answers, after
 * checking the capabilities the operator granted. Only JSON crosses.
 */

export type RunnerTier = 'core' | 'worker' | 'isolate';

/** Capabilities the operator granted at install (a subset of what the manifest asked for). */
export type GrantedCapabilities = PluginCapabilities;

export interface PluginCall {
  pluginId: string;
  instanceId: string | null;
  /** A method of the plugin's kind (issue, deploy, notify, ...). */
  method: string;
  request: Json;
  /** The instance's validated config without secrets. */
  config: Record<string, Json>;
  /** Epoch ms after which the call fails with `timeout`. */
  deadline: number;
}

/** Why a plugin call failed, as the host sees it. */
export type PluginFailureCode =
  | 'timeout' // the call did not finish by its deadline
  | 'cpu_limit' // the isolate ran past its CPU budget
  | 'memory_limit' // the isolate or worker exceeded its memory limit
  | 'crashed' // the worker or sandbox process died
  | 'plugin_error' // the plugin threw (any value)
  | 'bad_result' // the result is not JSON, too large, or not of the contract's shape
  | 'capability_denied' // the plugin used something it was not granted
  | 'not_supported' // the plugin does not implement the method
  | 'unavailable'; // the plugin is disabled or its runner could not start

export class PluginCallError extends Error {
  constructor(readonly code: PluginFailureCode, message: string, readonly pluginId: string) {
    super(message);
    this.name = 'PluginCallError';
  }
}

export interface PluginRunner {
  readonly tier: RunnerTier;
  /** Runs one method; rejects with PluginCallError. Never lets a plugin fault escape as anything else. */
  call(call: PluginCall): Promise<Json>;
  /** Stops the runner's workers or process. */
  close(): Promise<void>;
}

/** ctx.issuance's broker ops, one per method of the SDK's ISSUANCE_METHODS. */
export type IssuanceOpName = `issuance.${IssuanceMethod}`;
const ISSUANCE_OPS: ReadonlySet<string> = new Set(ISSUANCE_METHODS.map((m) => `issuance.${m}`));
export const isIssuanceOp = (name: unknown): name is IssuanceOpName => typeof name === 'string' && ISSUANCE_OPS.has(name);

/** What a plugin context can ask of the host. Names mirror PluginContext members. */
export type BrokerOp =
  | { op: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; message: string; fields?: Record<string, Json> }
  | { op: 'secrets.get'; path: string }
  | { op: 'secrets.deriveKey'; label: string }
  | { op: 'http.fetch'; request: Json }
  | { op: 'kv.get'; key: string }
  | { op: 'kv.set'; key: string; value: Json; ttlSeconds?: number }
  | { op: 'kv.delete'; key: string }
  | { op: 'kv.list'; prefix?: string }
  | { op: 'kv.take'; key: string }
  | { op: 'kv.increment'; key: string; by?: number; ttlSeconds?: number }
  | { op: 'events.emit'; type: string; data: Record<string, Json> }
  | { op: 'ca.ensure'; request: Json }
  | { op: 'ca.sign'; request: Json }
  | { op: IssuanceOpName; request: Json }
  | { op: 'fs.read'; path: string }
  | { op: 'fs.remove'; path: string }
  | { op: 'fs.write'; path: string; data: string; mode?: number }
  | { op: 'exec.run'; command: string; args: string[]; timeoutMs?: number; input?: string };

export interface BrokerCallContext {
  pluginId: string;
  instanceId: string | null;
  grants: GrantedCapabilities;
  deadline: number;
}

/**
 * What handle() resolves to, per op (context shims in every runner rely on it):
 *   log -> null; secrets.get -> string | null (null: not set); secrets.deriveKey -> string;
 *   http.fetch -> HttpResponse (sdk); kv.get -> { value } | null (null: absent or expired,
 *   so a stored null stays distinguishable); kv.set, kv.delete, events.emit -> null;
 *   kv.list -> string[]; kv.take -> { value } | null; kv.increment -> number; ca.ensure -> CaInfo; ca.sign -> CaSignResult (sdk);
 *   issuance.enroll -> EnrollResult; issuance.revoke -> EnrollRevokeResult;
 *   issuance.caChain -> { chainPem } (sdk);
 *   issuance.raCertificate / raDecrypt / raSign -> RaCertificate / RaDecryptResult / RaSignResult (sdk);
 *   fs.read -> string; fs.write, fs.remove -> null; exec.run -> ExecResult.
 * Refusals reject with PluginCallError (capability_denied, or timeout past the
 * deadline); I/O failures the plugin should handle (connection refused, DNS)
 * reject with a plain Error carrying an errno-like `code`.
 */
export interface CapabilityBroker {
  /** Answers one op for one plugin call; rejects with PluginCallError('capability_denied') when not granted. */
  handle(ctx: BrokerCallContext, op: BrokerOp): Promise<Json>;
}
