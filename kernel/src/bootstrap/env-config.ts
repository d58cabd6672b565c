import { StartupError } from '../errors.js';
import { bool, duration, int, list, oneOf, optional, type Env } from '../config.js';
import { ID_PATTERN } from '../db/ids.js';

/*
 * The environment variables of the system certctl replaces that configure enrolment
 * endpoints, notifiers and the digest (CERTCTL_EST_*, CERTCTL_SCEP_*, CERTCTL_SMTP_*,
 * CERTCTL_WEBHOOK_URL, CERTCTL_SLACK_*, CERTCTL_TEAMS_*, CERTCTL_PAGERDUTY_*,
 * CERTCTL_OPSGENIE_*, CERTCTL_DIGEST_*). Parsed and checked with the rest of the
 * configuration, so a bad value stops the start with a message naming the variable;
 * bootstrap/apply-env.ts turns them into env-managed rows.
 */

export type EstAuth = 'basic' | 'client-certificate' | 'basic-or-client-certificate';
export const PAGERDUTY_SEVERITIES = ['critical', 'error', 'warning', 'info'] as const;
export const OPSGENIE_PRIORITIES = ['P1', 'P2', 'P3', 'P4', 'P5'] as const;

export interface EnvBootstrapConfig {
  est: { enabled: boolean; issuerId: string; profileId?: string; auth: EstAuth; username: string; password?: string };
  scep: { enabled: boolean; issuerId: string; profileId?: string; challengePassword?: string };
  smtp?: { host: string; port: number; username?: string; password?: string; fromAddress: string; useTls: boolean };
  webhook?: { url: string };
  slack?: { webhookUrl: string; channel?: string; username?: string };
  teams?: { webhookUrl: string };
  pagerduty?: { routingKey: string; severity: (typeof PAGERDUTY_SEVERITIES)[number] };
  opsgenie?: { apiKey: string; priority: (typeof OPSGENIE_PRIORITIES)[number] };
  digest: { enabled: boolean; intervalMs: number; recipients: string[] };
}

const ID_RE = new RegExp(ID_PATTERN);
const EMAIL_RE = /^[^@\s,<>]+@[^@\s,<>]+$/;
const MIN_DIGEST_INTERVAL_MS = 60_000;

function id(env: Env, name: string, def?: string): string | undefined {
  const value = optional(env[name]) ?? def;
  if (value !== undefined && !ID_RE.test(value)) throw new StartupError(`${name}: "${value}" is not an id (lowercase letters, digits and dashes, 3-64 characters)`);
  return value;
}

/** An http(s) URL; the value itself is never echoed (webhook URLs carry tokens). */
function httpUrl(env: Env, name: string): string | undefined {
  const value = optional(env[name]);
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new StartupError(`${name}: not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new StartupError(`${name}: must be an http:// or https:// URL`);
  return value;
}

function secret(env: Env, name: string, min: number, max: number): string | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  if (value.length < min || value.length > max) throw new StartupError(`${name}: must be ${min} to ${max} characters long`);
  return value;
}

/** `name` must be set when `because` is: the message says which variable asked for it. */
function required<T>(value: T | undefined, name: string, because: string): T {
  if (value === undefined) throw new StartupError(`${name}: required when ${because}`);
  return value;
}

function loadEst(env: Env): EnvBootstrapConfig['est'] {
  const enabled = bool(env, 'CERTCTL_EST_ENABLED', false);
  const auth = oneOf<EstAuth>(env, 'CERTCTL_EST_AUTH', 'basic', ['basic', 'client-certificate', 'basic-or-client-certificate']);
  const password = secret(env, 'CERTCTL_EST_PASSWORD', 8, 256);
  const username = optional(env.CERTCTL_EST_USERNAME) ?? 'est';
  if (username.length > 128 || username.includes(':')) throw new StartupError('CERTCTL_EST_USERNAME: at most 128 characters and no ":"');
  // Basic auth without a password would refuse every device: say so now rather than at the first enrolment.
  if (enabled && auth !== 'client-certificate' && password === undefined) {
    throw new StartupError(`CERTCTL_EST_PASSWORD: required when CERTCTL_EST_ENABLED=true and CERTCTL_EST_AUTH=${auth} (HTTP basic password of at least 8 characters), or set CERTCTL_EST_AUTH=client-certificate`);
  }
  return { enabled, issuerId: id(env, 'CERTCTL_EST_ISSUER_ID', 'iss-local')!, profileId: id(env, 'CERTCTL_EST_PROFILE_ID'), auth, username, password };
}

function loadScep(env: Env): EnvBootstrapConfig['scep'] {
  const enabled = bool(env, 'CERTCTL_SCEP_ENABLED', false);
  const challengePassword = secret(env, 'CERTCTL_SCEP_CHALLENGE_PASSWORD', 8, 256);
  if (enabled) required(challengePassword, 'CERTCTL_SCEP_CHALLENGE_PASSWORD', 'CERTCTL_SCEP_ENABLED=true (the shared secret devices put in their CSR, at least 8 characters)');
  return { enabled, issuerId: id(env, 'CERTCTL_SCEP_ISSUER_ID', 'iss-local')!, profileId: id(env, 'CERTCTL_SCEP_PROFILE_ID'), challengePassword };
}

function loadSmtp(env: Env): EnvBootstrapConfig['smtp'] {
  const host = optional(env.CERTCTL_SMTP_HOST);
  const username = optional(env.CERTCTL_SMTP_USERNAME);
  const password = secret(env, 'CERTCTL_SMTP_PASSWORD', 1, 1024);
  if (host === undefined) {
    const stray = ['CERTCTL_SMTP_USERNAME', 'CERTCTL_SMTP_PASSWORD', 'CERTCTL_SMTP_FROM_ADDRESS'].find((n) => optional(env[n]) !== undefined);
    if (stray) throw new StartupError(`CERTCTL_SMTP_HOST: required when ${stray} is set`);
    return undefined;
  }
  if (!/^[A-Za-z0-9.:[\]-]{1,253}$/.test(host)) throw new StartupError(`CERTCTL_SMTP_HOST: "${host}" is not a host name or address`);
  if (password !== undefined && username === undefined) throw new StartupError('CERTCTL_SMTP_USERNAME: required when CERTCTL_SMTP_PASSWORD is set');
  const fromAddress = required(optional(env.CERTCTL_SMTP_FROM_ADDRESS), 'CERTCTL_SMTP_FROM_ADDRESS', 'CERTCTL_SMTP_HOST is set (the sender, e.g. certctl@example.com)');
  if (!/^[^\r\n]*@[^\r\n]*$/.test(fromAddress) || fromAddress.length > 320) throw new StartupError(`CERTCTL_SMTP_FROM_ADDRESS: "${fromAddress}" is not an e-mail address`);
  return { host, port: int(env, 'CERTCTL_SMTP_PORT', 587, 1, 65535), username, password, fromAddress, useTls: bool(env, 'CERTCTL_SMTP_USE_TLS', true) };
}

function loadDigest(env: Env): EnvBootstrapConfig['digest'] {
  const intervalMs = duration(env, 'CERTCTL_DIGEST_INTERVAL', '24h');
  if (intervalMs < MIN_DIGEST_INTERVAL_MS) throw new StartupError('CERTCTL_DIGEST_INTERVAL: must be at least 1m');
  const recipients = list(env.CERTCTL_DIGEST_RECIPIENTS);
  const bad = recipients.find((r) => !EMAIL_RE.test(r));
  if (bad !== undefined) throw new StartupError(`CERTCTL_DIGEST_RECIPIENTS: "${bad}" is not an e-mail address`);
  return { enabled: bool(env, 'CERTCTL_DIGEST_ENABLED', false), intervalMs, recipients };
}

export function loadEnvBootstrap(env: Env): EnvBootstrapConfig {
  const slackUrl = httpUrl(env, 'CERTCTL_SLACK_WEBHOOK_URL');
  const teamsUrl = httpUrl(env, 'CERTCTL_TEAMS_WEBHOOK_URL');
  const webhookUrl = httpUrl(env, 'CERTCTL_WEBHOOK_URL');
  const routingKey = secret(env, 'CERTCTL_PAGERDUTY_ROUTING_KEY', 1, 128);
  const apiKey = secret(env, 'CERTCTL_OPSGENIE_API_KEY', 1, 128);
  // Checked even without their key, so a typo is caught before the key is added.
  const severity = oneOf(env, 'CERTCTL_PAGERDUTY_SEVERITY', 'warning', PAGERDUTY_SEVERITIES);
  const priority = oneOf(env, 'CERTCTL_OPSGENIE_PRIORITY', 'P3', OPSGENIE_PRIORITIES);
  // Their lengths are the Slack plugin's schema to check (apply-env.ts names the variable when it refuses them).
  const slackChannel = optional(env.CERTCTL_SLACK_CHANNEL);
  const slackUsername = optional(env.CERTCTL_SLACK_USERNAME);
  return {
    est: loadEst(env),
    scep: loadScep(env),
    smtp: loadSmtp(env),
    ...(webhookUrl ? { webhook: { url: webhookUrl } } : {}),
    ...(slackUrl ? { slack: { webhookUrl: slackUrl, channel: slackChannel, username: slackUsername } } : {}),
    ...(teamsUrl ? { teams: { webhookUrl: teamsUrl } } : {}),
    ...(routingKey ? { pagerduty: { routingKey, severity } } : {}),
    ...(apiKey ? { opsgenie: { apiKey, priority } } : {}),
    digest: loadDigest(env),
  };
}
