import path from 'node:path';
import { StartupError } from './errors.js';
import { loadEnvBootstrap, type EnvBootstrapConfig } from './bootstrap/env-config.js';

/**
 * Kernel configuration, read once from CERTCTL_* environment variables.
 * Every value is parsed and range-checked here so a bad setting stops the
 * start with a message that names the variable, instead of failing later.
 */
export interface KernelConfig {
  serverHost: string;
  serverPort: number;
  dataDir: string;
  databaseUrl?: string;
  databasePoolMax: number;
  tlsCertPath?: string;
  tlsKeyPath?: string;
  logLevel: string;
  maxBodySize: number;
  corsOrigins: string[];
  rateLimit: { enabled: boolean; rps: number; burst: number };
  /** Per client address on the public CRL/OCSP endpoints (/.well-known/pki), which skip the API limiter. */
  pkiRateLimit: { rps: number; burst: number };
  authType: 'api-key' | 'none';
  bootstrapToken?: string;
  configEncryptionKey?: string;
  keygenMode: 'agent' | 'server';
  publicBaseUrl: string;
  /** Sub-CA mode for the Local CA: the operator's CA certificate and key (CERTCTL_CA_CERT_PATH / CERTCTL_CA_KEY_PATH). */
  caCertPath?: string;
  caKeyPath?: string;
  /** Lets `certctl agent` register itself (POST /api/v1/agents/register); registration is closed without it. */
  agentBootstrapToken?: string;
  intervals: {
    renewalCheckMs: number;
    jobProcessorMs: number;
    agentHealthCheckMs: number;
    notificationProcessMs: number;
    leaseReaperMs: number;
    /** Certificates with a lifetime under an hour are checked on their own, faster loop. */
    shortLivedCheckMs: number;
  };
  jobs: { leaseMs: number; maxAttempts: number; concurrency: number; backoffBaseMs: number };
  approvalTimeoutMs: number;
  agentOfflineAfterMs: number;
  shutdownTimeoutMs: number;
  schedulerEnabled: boolean;
  auditExcludePaths: string[];
  /** Extra plugin directories (CERTCTL_PLUGIN_DIRS), besides the workspace's plugins/<kind>/<name> folders. */
  pluginDirs: string[];
  /** Protocol endpoints, notifiers and the digest configured by CERTCTL_EST_*, CERTCTL_SMTP_*, CERTCTL_DIGEST_*, ... (bootstrap/). */
  bootstrap: EnvBootstrapConfig;
}

export type Env = Record<string, string | undefined>;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "30s", "5m", "1h", "2d" or "1h30m"; a bare number means seconds. */
export function parseDuration(value: string, name: string): number {
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    total += Number(m[1]) * UNITS[m[2]];
    consumed = re.lastIndex;
  }
  if (consumed !== v.length || consumed === 0) throw new StartupError(`${name}: "${value}" is not a duration (examples: 30s, 5m, 1h)`);
  return Math.round(total);
}

export function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw.trim())) throw new StartupError(`${name}: "${raw}" is not a whole number`);
  const n = Number(raw);
  if (n < min || n > max) throw new StartupError(`${name}: ${n} is outside ${min}..${max}`);
  return n;
}

export function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return def;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new StartupError(`${name}: "${env[name]}" is not true or false`);
}

export function duration(env: Env, name: string, def: string): number {
  const raw = env[name];
  return parseDuration(raw === undefined || raw === '' ? def : raw, name);
}

export function oneOf<T extends string>(env: Env, name: string, def: T, allowed: readonly T[]): T {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return def;
  if (!(allowed as readonly string[]).includes(raw)) throw new StartupError(`${name}: "${raw}" must be one of ${allowed.join(', ')}`);
  return raw as T;
}

export const list = (raw: string | undefined) => (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
export const optional = (raw: string | undefined) => (raw === undefined || raw.trim() === '' ? undefined : raw.trim());

export function loadConfig(env: Env = process.env): KernelConfig {
  const serverPort = int(env, 'CERTCTL_SERVER_PORT', 8443, 0, 65535);
  const dataDir = path.resolve(optional(env.CERTCTL_DATA_DIR) ?? 'data');
  const tlsCertPath = optional(env.CERTCTL_TLS_CERT_PATH);
  const tlsKeyPath = optional(env.CERTCTL_TLS_KEY_PATH);
  if (Boolean(tlsCertPath) !== Boolean(tlsKeyPath)) {
    throw new StartupError('CERTCTL_TLS_CERT_PATH and CERTCTL_TLS_KEY_PATH must be set together');
  }
  const corsOrigins = list(env.CERTCTL_CORS_ORIGINS);
  const bootstrapToken = optional(env.CERTCTL_BOOTSTRAP_TOKEN);
  if (bootstrapToken && bootstrapToken.length < 16) {
    throw new StartupError('CERTCTL_BOOTSTRAP_TOKEN must be at least 16 characters');
  }
  const caCertPath = optional(env.CERTCTL_CA_CERT_PATH);
  const caKeyPath = optional(env.CERTCTL_CA_KEY_PATH);
  if (Boolean(caCertPath) !== Boolean(caKeyPath)) throw new StartupError('CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH must be set together');
  const agentBootstrapToken = optional(env.CERTCTL_AGENT_BOOTSTRAP_TOKEN);
  if (agentBootstrapToken !== undefined && agentBootstrapToken.length < 16) throw new StartupError('CERTCTL_AGENT_BOOTSTRAP_TOKEN must be at least 16 characters');
  const publicBaseUrl = optional(env.CERTCTL_PUBLIC_BASE_URL) ?? `https://localhost:${serverPort}`;
  try {
    new URL(publicBaseUrl);
  } catch {
    throw new StartupError(`CERTCTL_PUBLIC_BASE_URL: "${publicBaseUrl}" is not a URL`);
  }
  return {
    serverHost: optional(env.CERTCTL_SERVER_HOST) ?? '0.0.0.0',
    serverPort,
    dataDir,
    databaseUrl: optional(env.CERTCTL_DATABASE_URL),
    databasePoolMax: int(env, 'CERTCTL_DATABASE_POOL_MAX', 10, 2, 1000),
    tlsCertPath: tlsCertPath && path.resolve(tlsCertPath),
    tlsKeyPath: tlsKeyPath && path.resolve(tlsKeyPath),
    logLevel: oneOf(env, 'CERTCTL_LOG_LEVEL', 'info', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    maxBodySize: int(env, 'CERTCTL_MAX_BODY_SIZE', 1_048_576, 1024, 512 * 1_048_576),
    corsOrigins,
    rateLimit: {
      enabled: bool(env, 'CERTCTL_RATE_LIMIT_ENABLED', true),
      rps: int(env, 'CERTCTL_RATE_LIMIT_RPS', 50, 1, 1_000_000),
      burst: int(env, 'CERTCTL_RATE_LIMIT_BURST', 100, 1, 10_000_000),
    },
    pkiRateLimit: {
      rps: int(env, 'CERTCTL_PKI_RATE_LIMIT_RPS', 1000, 1, 10_000_000),
      burst: int(env, 'CERTCTL_PKI_RATE_LIMIT_BURST', 2000, 1, 100_000_000),
    },
    authType: oneOf(env, 'CERTCTL_AUTH_TYPE', 'api-key', ['api-key', 'none'] as const),
    bootstrapToken,
    configEncryptionKey: optional(env.CERTCTL_CONFIG_ENCRYPTION_KEY),
    keygenMode: oneOf(env, 'CERTCTL_KEYGEN_MODE', 'agent', ['agent', 'server'] as const),
    publicBaseUrl: publicBaseUrl.replace(/\/+$/, ''),
    ...(caCertPath ? { caCertPath: path.resolve(caCertPath), caKeyPath: path.resolve(caKeyPath!) } : {}),
    ...(agentBootstrapToken ? { agentBootstrapToken } : {}),
    intervals: {
      renewalCheckMs: duration(env, 'CERTCTL_RENEWAL_CHECK_INTERVAL', '1h'),
      jobProcessorMs: duration(env, 'CERTCTL_JOB_PROCESSOR_INTERVAL', '30s'),
      agentHealthCheckMs: duration(env, 'CERTCTL_AGENT_HEALTH_CHECK_INTERVAL', '2m'),
      notificationProcessMs: duration(env, 'CERTCTL_NOTIFICATION_PROCESS_INTERVAL', '1m'),
      leaseReaperMs: duration(env, 'CERTCTL_JOB_REAPER_INTERVAL', '30s'),
      shortLivedCheckMs: duration(env, 'CERTCTL_SHORT_LIVED_CHECK_INTERVAL', '30s'),
    },
    jobs: {
      leaseMs: duration(env, 'CERTCTL_JOB_LEASE', '5m'),
      maxAttempts: int(env, 'CERTCTL_JOB_MAX_ATTEMPTS', 3, 1, 100),
      concurrency: int(env, 'CERTCTL_JOB_CONCURRENCY', 4, 1, 256),
      backoffBaseMs: duration(env, 'CERTCTL_JOB_BACKOFF', '30s'),
    },
    approvalTimeoutMs: duration(env, 'CERTCTL_APPROVAL_TIMEOUT', '72h'),
    agentOfflineAfterMs: duration(env, 'CERTCTL_AGENT_OFFLINE_AFTER', '5m'),
    shutdownTimeoutMs: duration(env, 'CERTCTL_SHUTDOWN_TIMEOUT', '30s'),
    schedulerEnabled: bool(env, 'CERTCTL_SCHEDULER_ENABLED', true),
    auditExcludePaths: list(env.CERTCTL_AUDIT_EXCLUDE_PATHS ?? '/health,/ready'),
    pluginDirs: list(env.CERTCTL_PLUGIN_DIRS).map((dir) => path.resolve(dir)),
    bootstrap: loadEnvBootstrap(env),
  };
}
