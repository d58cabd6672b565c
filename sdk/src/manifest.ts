/**
 * The plugin manifest: the `certctl` block of a plugin package's package.json.
 * The host reads and checks it as data before any of the plugin's code is loaded,
 * so everything the host must know up front (kind, config form, requested
 * capabilities) lives here rather than in code.
 */

export const PLUGIN_API_VERSION = 'certctl.plugin/v1' as const;

export const PLUGIN_KINDS = ['issuer', 'target', 'notifier', 'protocol', 'discovery'] as const;
export type PluginKind = (typeof PLUGIN_KINDS)[number];

/** `worker`: a worker thread (first-party); `isolate`: a V8 isolate in a child process (third-party). */
export const PLUGIN_RUNTIMES = ['worker', 'isolate'] as const;
export type PluginRuntime = (typeof PLUGIN_RUNTIMES)[number];

/** A JSON schema as plain data. */
export type JsonSchemaObject = { [keyword: string]: unknown };

/**
 * What a plugin asks the host for. Nothing here is granted by being asked for:
 * the operator grants capabilities at install time and the host enforces them.
 */
export interface PluginCapabilities {
  /**
   * Outbound HTTP(S) to these hosts only (`example.com`, `*.example.com`, `host:8443`).
   * HTTPS only, unless the entry starts with `http://` (`http://10.0.0.5:8080`); no port means any port.
   */
  http?: { hosts: string[] };
  /**
   * A key-value store private to the plugin: `true` (up to 10,000 live keys), or
   * `{ maxKeys }` for a larger quota (servers keeping per-client state), at most
   * KV_MAX_KEYS_CEILING (@certctl/sdk/policy). An installed plugin gets the quota
   * only when the operator grants it (the `kv:max-keys=N` item).
   */
  kv?: boolean | { maxKeys: number };
  /** Emitting events onto the kernel's event stream. */
  events?: boolean;
  /** Signing with a CA the kernel keeps for the instance (ctx.ca); the key never reaches the plugin. */
  ca?: boolean;
  /** Protocol plugins only: enrolment through the kernel's issuance service (ctx.issuance). */
  issuance?: boolean;
  /** Agent-side file access, limited to these absolute paths (and below them). */
  fs?: { paths: string[] };
  /**
   * Agent-side command execution, limited to these commands (arguments always as
   * arrays). `args` lists, per declared command, the argument lists the plugin runs
   * it with (each position a literal, `{ regex }` matching the whole argument, or
   * `{ path: "read" | "write" }`: a path inside the call's granted paths; see
   * @certctl/sdk/policy exec-args): any other arguments are refused, and a config
   * field (x-certctl-command) naming the command must be one of these lists too. A
   * command without an entry runs with any arguments (discouraged).
   */
  exec?: { commands: string[]; args?: Record<string, (string | { regex: string } | { path: 'read' | 'write' })[][]> };
}

/** The most kv keys a manifest may ask for (`capabilities.kv: { maxKeys }`). */
export const KV_MAX_KEYS_CEILING = 10_000_000;

export type PluginCapability = keyof PluginCapabilities;

export interface PluginManifest {
  /** Stable identifier, kebab-case; instances refer to it as their `type`. */
  id: string;
  kind: PluginKind;
  apiVersion: typeof PLUGIN_API_VERSION;
  /** Human-readable name; the package name is used when absent. */
  displayName?: string;
  /** `certctl`: semver range of host versions the plugin works with. */
  engines: { certctl: string };
  /** Runtimes the plugin can run in, each with its entry module in `entry`. */
  runtimes: PluginRuntime[];
  /** Entry module per runtime, relative to the package directory. */
  entry: Partial<Record<PluginRuntime, string>>;
  capabilities?: PluginCapabilities;
  /** JSON schema of an instance's config. Fields marked `writeOnly: true` or `x-secret: true` are secrets. */
  configSchema: JsonSchemaObject & { type: 'object' };
  /** Presentation hints for the dashboard's form renderer; never used for validation. */
  uiSchema?: JsonSchemaObject;
  /** Optional operations the plugin implements (e.g. `renew`, `revoke`, `crl`). */
  features?: string[];
  /**
   * Calls one worker thread runs at once (first-party `worker` runtime; 1 to 32).
   * For plugins whose calls mostly wait on host calls (`ca.sign`, `http.fetch`):
   * more calls share a thread instead of queueing for one. The price is
   * isolation: a call that crashes its thread, or is still busy past its
   * deadline, takes the thread's other calls with it. Default 1 (8 for protocol
   * plugins, which serve many requests).
   */
  workerConcurrency?: number;
  /** Required of (and only allowed for) protocol plugins. */
  protocol?: ProtocolManifest;
}

/**
 * Where a protocol plugin is served. Each mount is one of PROTOCOL_MOUNT_ROOTS or
 * a path below one; the kernel forwards every request at or below it to `handle`.
 */
export interface ProtocolManifest {
  mounts: string[];
  /** Ask TLS clients for a certificate (EST client-certificate auth); it is never required by the kernel. */
  clientCertificates?: boolean;
  /** Largest request body forwarded (default 65536, at most 1 MiB). */
  maxBodyBytes?: number;
  /** Per-request deadline in ms (default 30000, at most 120000). */
  timeoutMs?: number;
}

/** Path roots protocol plugins may mount at (or below). The API, probes and PKI endpoints are never among them. */
export const PROTOCOL_MOUNT_ROOTS = ['/acme', '/.well-known/est', '/scep', '/.well-known/cmp', '/cmp'] as const;

/** The parts of package.json the host reads. */
export interface PluginPackageJson {
  name?: string;
  version?: string;
  description?: string;
  certctl?: unknown;
}

/** True for a config-schema property that holds a secret (encrypted at rest, never returned). */
export function isSecretField(schema: unknown): boolean {
  if (!schema || typeof schema !== 'object') return false;
  const s = schema as { writeOnly?: unknown; 'x-secret'?: unknown };
  return s.writeOnly === true || s['x-secret'] === true;
}
