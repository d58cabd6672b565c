/**
 * Messages between the kernel (parent) and the sandbox child process over the
 * fork IPC channel. Everything a plugin produced travels as JSON *text* (the
 * result, each BrokerOp), so the parent parses it itself and size caps are exact.
 * The child holds no grants and no kernel state: it only runs the isolate and
 * relays ops; the parent asks the CapabilityBroker.
 */

/** Per-call limits enforced inside the child (and mirrored in the isolate for clear errors). */
export interface SandboxLimits {
  /** Isolate heap limit in MB (isolated-vm's memoryLimit). */
  memoryLimitMb: number;
  /** Longest one run of plugin code (the call itself, a timer callback, a host reply continuation) may hold the isolate. */
  cpuTimeoutMs: number;
  /** UTF-8 bytes of a method's JSON result. */
  maxResultBytes: number;
  /** UTF-8 bytes of one BrokerOp as JSON text. */
  maxOpBytes: number;
  /** Host operations (including log lines) per call. */
  maxOpsPerCall: number;
  /** setTimeout callbacks waiting at once, and scheduled in total, per call. */
  maxPendingTimers: number;
  maxTimersPerCall: number;
}

/** Parent -> child: load the plugin's bundled entry script (source text; the child never reads plugin files). */
export interface InitMessage {
  t: 'init';
  pluginId: string;
  /** The manifest kind; when set, the exported plugin object's `kind` must agree. */
  kind: string | null;
  source: string;
  /** Shown in the plugin's stack traces. */
  filename: string;
  limits: SandboxLimits;
}

export interface CallMessage {
  t: 'call';
  id: number;
  method: string;
  requestJson: string;
  configJson: string;
  instanceId: string | null;
  deadline: number;
}

/** The broker's answer to one op. `hostRefusal` marks a PluginCallError (its code fails the call if uncaught). */
export type OpResultMessage =
  | { t: 'opResult'; callId: number; opId: number; ok: true; valueJson: string | null }
  | { t: 'opResult'; callId: number; opId: number; ok: false; message: string; code?: string; hostRefusal: boolean };

export type ParentMessage = InitMessage | CallMessage | OpResultMessage;

export type CallOutcome = { ok: true; json: string } | { ok: false; code: string; message: string };

/** Child -> parent. `opId` 0 is fire-and-forget (log lines): no answer is sent. */
export type ChildMessage =
  | { t: 'ready' }
  | { t: 'initFailed'; message: string }
  | { t: 'op'; callId: number; opId: number; opJson: string }
  | ({ t: 'done'; id: number } & CallOutcome)
  | { t: 'fatal'; message: string };
