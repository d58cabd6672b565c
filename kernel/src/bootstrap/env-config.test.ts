import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { envInstances } from './env-instances.js';

const load = (env: Record<string, string>) => loadConfig({ CERTCTL_DATA_DIR: '/tmp/certctl-env-config-test', ...env }).bootstrap;
const SMTP = { CERTCTL_SMTP_HOST: 'mail.example.test', CERTCTL_SMTP_FROM_ADDRESS: 'certctl@example.test' };

describe('CERTCTL_* enrolment, notifier and digest variables', () => {
  it('defaults: everything off, EST/SCEP on iss-local, digest every 24h, SMTP 587 with TLS', () => {
    const c = load({});
    expect(c.est).toMatchObject({ enabled: false, issuerId: 'iss-local', auth: 'basic', username: 'est' });
    expect(c.scep).toMatchObject({ enabled: false, issuerId: 'iss-local' });
    expect(c.smtp).toBeUndefined();
    expect(c.digest).toEqual({ enabled: false, intervalMs: 86_400_000, recipients: [] });
    expect(envInstances(c).every((i) => i.config === null)).toBe(true);
    expect(load(SMTP).smtp).toMatchObject({ port: 587, useTls: true });
  });

  it('maps variables to plugin config: SMTP TLS modes, PagerDuty and OpsGenie defaults, SCEP', () => {
    const c = load({
      ...SMTP, CERTCTL_SMTP_PORT: '465', CERTCTL_PAGERDUTY_ROUTING_KEY: 'rk', CERTCTL_OPSGENIE_API_KEY: 'ak',
      CERTCTL_SCEP_ENABLED: 'yes', CERTCTL_SCEP_CHALLENGE_PASSWORD: 'challenge-123', CERTCTL_SCEP_PROFILE_ID: 'prof-mdm',
    });
    const byId = Object.fromEntries(envInstances(c).map((i) => [i.id, i.config]));
    expect(byId['ntf-env-email']).toEqual({ host: 'mail.example.test', port: 465, secure: true, starttls: 'required', from: 'certctl@example.test' });
    expect(byId['ntf-env-pagerduty']).toEqual({ routing_key: 'rk', severity: 'warning' });
    expect(byId['ntf-env-opsgenie']).toEqual({ api_key: 'ak', priority: 'P3' });
    expect(byId['pe-env-scep']).toEqual({ issuer_id: 'iss-local', profile_id: 'prof-mdm', challenge_password: 'challenge-123' });
    expect(byId['ntf-env-slack']).toBeNull();
    const plain = envInstances(load({ ...SMTP, CERTCTL_SMTP_USE_TLS: 'false' })).find((i) => i.id === 'ntf-env-email')!.config;
    expect(plain).toMatchObject({ port: 587, secure: false, starttls: 'disabled' });
  });

  const refused: [string, Record<string, string>, RegExp][] = [
    ['EST without a password for basic auth', { CERTCTL_EST_ENABLED: 'true' }, /^CERTCTL_EST_PASSWORD: required when CERTCTL_EST_ENABLED=true/],
    ['EST with a bad auth mode', { CERTCTL_EST_AUTH: 'none' }, /^CERTCTL_EST_AUTH: "none" must be one of/],
    ['EST enabled is not a boolean', { CERTCTL_EST_ENABLED: 'maybe' }, /^CERTCTL_EST_ENABLED: "maybe" is not true or false/],
    ['EST issuer id with capitals', { CERTCTL_EST_ISSUER_ID: 'Iss Local' }, /^CERTCTL_EST_ISSUER_ID: "Iss Local" is not an id/],
    ['SCEP without a challenge password', { CERTCTL_SCEP_ENABLED: 'true' }, /^CERTCTL_SCEP_CHALLENGE_PASSWORD: required when CERTCTL_SCEP_ENABLED=true/],
    ['SMTP without a sender', { CERTCTL_SMTP_HOST: 'mail.example.test' }, /^CERTCTL_SMTP_FROM_ADDRESS: required when CERTCTL_SMTP_HOST is set/],
    ['SMTP port out of range', { ...SMTP, CERTCTL_SMTP_PORT: '70000' }, /^CERTCTL_SMTP_PORT: 70000 is outside 1\.\.65535/],
    ['SMTP password without a user', { ...SMTP, CERTCTL_SMTP_PASSWORD: 'pw' }, /^CERTCTL_SMTP_USERNAME: required when CERTCTL_SMTP_PASSWORD is set/],
    ['SMTP user without a host', { CERTCTL_SMTP_USERNAME: 'u' }, /^CERTCTL_SMTP_HOST: required when CERTCTL_SMTP_USERNAME is set/],
    ['a Slack URL that is not http(s)', { CERTCTL_SLACK_WEBHOOK_URL: 'ftp://hooks.example.test/x' }, /^CERTCTL_SLACK_WEBHOOK_URL: must be an http/],
    ['a webhook URL that is not a URL', { CERTCTL_WEBHOOK_URL: 'not a url' }, /^CERTCTL_WEBHOOK_URL: not a URL$/],
    ['a PagerDuty severity outside the API', { CERTCTL_PAGERDUTY_SEVERITY: 'high' }, /^CERTCTL_PAGERDUTY_SEVERITY: "high" must be one of critical, error, warning, info/],
    ['an OpsGenie priority outside P1..P5', { CERTCTL_OPSGENIE_PRIORITY: 'P9' }, /^CERTCTL_OPSGENIE_PRIORITY: "P9" must be one of P1/],
    ['a digest interval that is not a duration', { CERTCTL_DIGEST_INTERVAL: 'daily' }, /^CERTCTL_DIGEST_INTERVAL: "daily" is not a duration/],
    ['a digest interval under a minute', { CERTCTL_DIGEST_INTERVAL: '10s' }, /^CERTCTL_DIGEST_INTERVAL: must be at least 1m/],
    ['a digest recipient that is not an address', { CERTCTL_DIGEST_RECIPIENTS: 'ops@example.test,ops' }, /^CERTCTL_DIGEST_RECIPIENTS: "ops" is not an e-mail address/],
  ];
  it.each(refused)('refuses %s with a message naming the variable', (_what, env, message) => {
    expect(() => load(env)).toThrow(message);
  });

  it('never echoes a secret or webhook URL in its messages', () => {
    const secret = 'ftp://hooks.example.test/T0/B0/very-secret-token';
    expect(() => load({ CERTCTL_SLACK_WEBHOOK_URL: secret })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('very-secret-token') }));
    expect(() => load({ CERTCTL_SCEP_CHALLENGE_PASSWORD: 'short' })).toThrow(/^CERTCTL_SCEP_CHALLENGE_PASSWORD: must be 8 to 256 characters long$/);
  });
});
