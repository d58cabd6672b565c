import os from 'node:os';
import path from 'node:path';
import { parseDuration } from './kernel-parts.js';
import { alwaysRefusedPath, DEFAULT_AGENT_ALLOWED_PATHS } from '@certctl/sdk/policy';
import { commandProblem, parseAllowlist, pathProblem } from './grants.js';

/** How the agent trusts the control plane's TLS certificate. Verification is never off. */
export type ServerTrust =
  | { mode: 'system' }
  | { mode: 'ca-file'; caFile: string }
  /** The server's own certificate, by SHA-256 (for the control plane's self-signed bootstrap certificate). */
  | { mode: 'pinned'; sha256: string };

export interface AgentConfig {
  serverUrl: string;
  trust: ServerTrust;
  agentId?: string;
  agentName: string;
  apiKey?: string;
  bootstrapToken?: string;
  keyDir: string;
  stateDir: string;
  pluginDirs: string[];
  discoveryDirs: string[];
  discoveryIntervalMs: number;
  verifyDelayMs: number;
  verifyTimeoutMs: number;
  /** How long a served certificate may lag a reload before the deploy counts as failed. */
  verifyWindowMs: number;
  pollIntervalMs: number;
  /** The operator chose the poll interval; otherwise the server's poll_after_ms hint is followed. */
  pollIntervalSet: boolean;
  heartbeatIntervalMs: number;
  /** Longest wait between attempts while the control plane is away. */
  maxBackoffMs: number;
  /** CERTCTL_AGENT_ALLOWED_PATHS, or the default certificate directories when unset. */
  allowedPaths: string[];
  /** CERTCTL_AGENT_ALLOWED_COMMANDS: commands beyond the target manifests' own (empty when unset). */
  allowedCommands: string[];
  logLevel: string;
}

export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

type Env = Record<string, string | undefined>;

const optional = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.trim());
const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

function duration(env: Env, name: string, def: string, min: number): number {
  let ms: number;
  try {
    ms = parseDuration(optional(env[name]) ?? def, name);
  } catch (err) {
    throw new AgentConfigError((err as Error).message);
  }
  if (ms < min) throw new AgentConfigError(`${name}: must be at least ${min} ms`);
  return ms;
}

/** A SHA-256 fingerprint as lowercase hex, whatever the notation (colons, case). */
export function normalizeSha256(raw: string): string | null {
  const hex = raw.replace(/^sha256[:/]/i, '').replace(/:/g, '').trim().toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

function absoluteDir(env: Env, name: string, def: string): string {
  const v = optional(env[name]) ?? def;
  const problem = pathProblem(v);
  if (problem) throw new AgentConfigError(`${name}: ${problem}`);
  return path.resolve(v);
}

/**
 * Reads the agent's settings from CERTCTL_* variables (command-line flags are
 * mapped onto the same names first). Everything is checked here, so a bad value
 * stops the start with a message naming the variable.
 */
export function loadAgentConfig(env: Env): AgentConfig {
  const serverUrl = optional(env.CERTCTL_SERVER_URL) ?? 'https://localhost:8443';
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    throw new AgentConfigError(`CERTCTL_SERVER_URL: "${serverUrl}" is not a URL`);
  }
  if (url.protocol !== 'https:') throw new AgentConfigError('CERTCTL_SERVER_URL must be an https:// URL: the agent receives certificates and deploy secrets from it');

  const caFile = optional(env.CERTCTL_SERVER_CA_FILE) ?? optional(env.CERTCTL_CA_FILE);
  const pin = optional(env.CERTCTL_SERVER_CERT_SHA256);
  if (caFile && pin) throw new AgentConfigError('set CERTCTL_SERVER_CA_FILE or CERTCTL_SERVER_CERT_SHA256, not both');
  let trust: ServerTrust = { mode: 'system' };
  if (caFile) trust = { mode: 'ca-file', caFile: path.resolve(caFile) };
  if (pin) {
    const sha256 = normalizeSha256(pin);
    if (!sha256) throw new AgentConfigError('CERTCTL_SERVER_CERT_SHA256 must be a SHA-256 fingerprint (64 hex digits, colons allowed)');
    trust = { mode: 'pinned', sha256 };
  }

  const agentId = optional(env.CERTCTL_AGENT_ID);
  if (agentId && !/^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$/.test(agentId)) throw new AgentConfigError('CERTCTL_AGENT_ID must be 3-64 lowercase letters, digits and dashes');
  const bootstrapToken = optional(env.CERTCTL_AGENT_BOOTSTRAP_TOKEN);
  const apiKey = optional(env.CERTCTL_API_KEY);
  if (apiKey && !agentId) throw new AgentConfigError('CERTCTL_API_KEY needs CERTCTL_AGENT_ID (the agent the key belongs to)');

  const discoveryDirs = list(env.CERTCTL_DISCOVERY_DIRS);
  for (const d of discoveryDirs) {
    const problem = pathProblem(d);
    if (problem) throw new AgentConfigError(`CERTCTL_DISCOVERY_DIRS: ${problem}`);
  }
  let allowedPaths: string[];
  let allowedCommands: string[];
  try {
    // Deny by default: unset means the usual certificate directories, and no commands beyond the manifests'.
    allowedPaths = parseAllowlist(env.CERTCTL_AGENT_ALLOWED_PATHS, 'CERTCTL_AGENT_ALLOWED_PATHS', (p) => pathProblem(p) ?? alwaysRefusedPath(p)) ?? [...DEFAULT_AGENT_ALLOWED_PATHS];
    allowedCommands = parseAllowlist(env.CERTCTL_AGENT_ALLOWED_COMMANDS, 'CERTCTL_AGENT_ALLOWED_COMMANDS', commandProblem) ?? [];
  } catch (err) {
    throw new AgentConfigError((err as Error).message);
  }
  const logLevel = optional(env.CERTCTL_LOG_LEVEL) ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) throw new AgentConfigError(`CERTCTL_LOG_LEVEL: "${logLevel}" is not a log level`);

  const config: AgentConfig = {
    serverUrl: url.href.replace(/\/+$/, ''),
    trust,
    agentName: (optional(env.CERTCTL_AGENT_NAME) ?? os.hostname()).slice(0, 200),
    keyDir: absoluteDir(env, 'CERTCTL_KEY_DIR', '/var/lib/certctl/keys'),
    stateDir: absoluteDir(env, 'CERTCTL_AGENT_STATE_DIR', '/var/lib/certctl/agent'),
    pluginDirs: list(env.CERTCTL_PLUGIN_DIRS).map((d) => path.resolve(d)),
    discoveryDirs: discoveryDirs.map((d) => path.resolve(d)),
    discoveryIntervalMs: duration(env, 'CERTCTL_DISCOVERY_INTERVAL', '6h', 1000),
    verifyDelayMs: duration(env, 'CERTCTL_VERIFY_DELAY', '2s', 0),
    verifyTimeoutMs: duration(env, 'CERTCTL_VERIFY_TIMEOUT', '5s', 100),
    verifyWindowMs: duration(env, 'CERTCTL_VERIFY_WINDOW', '15s', 0),
    pollIntervalMs: duration(env, 'CERTCTL_AGENT_POLL_INTERVAL', '10s', 100),
    pollIntervalSet: optional(env.CERTCTL_AGENT_POLL_INTERVAL) !== undefined,
    heartbeatIntervalMs: duration(env, 'CERTCTL_AGENT_HEARTBEAT_INTERVAL', '60s', 100),
    maxBackoffMs: duration(env, 'CERTCTL_AGENT_MAX_BACKOFF', '60s', 100),
    allowedPaths,
    allowedCommands,
    logLevel,
    ...(agentId ? { agentId } : {}),
    ...(apiKey ? { apiKey } : {}),
    ...(bootstrapToken ? { bootstrapToken } : {}),
  };
  if (config.keyDir === config.stateDir) throw new AgentConfigError('CERTCTL_KEY_DIR and CERTCTL_AGENT_STATE_DIR must differ');
  return config;
}

/** Command-line flags and the variables they set (a flag wins over the environment). */
export const FLAG_ENV: Record<string, string> = {
  'server-url': 'CERTCTL_SERVER_URL',
  'agent-id': 'CERTCTL_AGENT_ID',
  'api-key': 'CERTCTL_API_KEY',
  name: 'CERTCTL_AGENT_NAME',
  'key-dir': 'CERTCTL_KEY_DIR',
  'state-dir': 'CERTCTL_AGENT_STATE_DIR',
  'discovery-dirs': 'CERTCTL_DISCOVERY_DIRS',
  'plugin-dirs': 'CERTCTL_PLUGIN_DIRS',
  'ca-file': 'CERTCTL_SERVER_CA_FILE',
  'server-cert-sha256': 'CERTCTL_SERVER_CERT_SHA256',
  'verify-delay': 'CERTCTL_VERIFY_DELAY',
  'poll-interval': 'CERTCTL_AGENT_POLL_INTERVAL',
  'heartbeat-interval': 'CERTCTL_AGENT_HEARTBEAT_INTERVAL',
  'allowed-paths': 'CERTCTL_AGENT_ALLOWED_PATHS',
  'allowed-commands': 'CERTCTL_AGENT_ALLOWED_COMMANDS',
  'log-level': 'CERTCTL_LOG_LEVEL',
};
