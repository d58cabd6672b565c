import type { EnvBootstrapConfig } from './env-config.js';

/**
 * One notifier or protocol endpoint the environment asks for: a fixed id (so every
 * kernel and every restart finds the same row), the plugin, and its config in the
 * plugin's own field names. `config: null` means the variable is off: an existing
 * row is disabled, none is created.
 */
export interface EnvInstance {
  kind: 'notifier' | 'protocol';
  id: string;
  name: string;
  /** Plugin id. */
  type: string;
  /** The variable that switches it on, for messages. */
  variable: string;
  config: Record<string, unknown> | null;
}

export const ENV_IDS = {
  est: 'pe-env-est',
  scep: 'pe-env-scep',
  email: 'ntf-env-email',
  webhook: 'ntf-env-webhook',
  slack: 'ntf-env-slack',
  teams: 'ntf-env-teams',
  pagerduty: 'ntf-env-pagerduty',
  opsgenie: 'ntf-env-opsgenie',
} as const;

/** Drops undefined members, so optional variables left unset do not reach the plugin's schema. */
const defined = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

export function envInstances(c: EnvBootstrapConfig): EnvInstance[] {
  const smtp = c.smtp;
  return [
    {
      kind: 'protocol', id: ENV_IDS.est, name: 'EST (environment)', type: 'est', variable: 'CERTCTL_EST_ENABLED',
      config: c.est.enabled
        ? defined({ issuer_id: c.est.issuerId, profile_id: c.est.profileId, auth: c.est.auth, username: c.est.username, password: c.est.password })
        : null,
    },
    {
      kind: 'protocol', id: ENV_IDS.scep, name: 'SCEP (environment)', type: 'scep', variable: 'CERTCTL_SCEP_ENABLED',
      config: c.scep.enabled
        ? defined({ issuer_id: c.scep.issuerId, profile_id: c.scep.profileId, challenge_password: c.scep.challengePassword })
        : null,
    },
    {
      kind: 'notifier', id: ENV_IDS.email, name: 'E-mail (environment)', type: 'email', variable: 'CERTCTL_SMTP_HOST',
      // USE_TLS on port 465 is implicit TLS; on other ports it means STARTTLS is required. Off: plain SMTP (local relays).
      config: smtp
        ? defined({
            host: smtp.host, port: smtp.port, secure: smtp.useTls && smtp.port === 465,
            starttls: smtp.useTls ? 'required' : 'disabled', username: smtp.username, password: smtp.password, from: smtp.fromAddress,
          })
        : null,
    },
    { kind: 'notifier', id: ENV_IDS.webhook, name: 'Webhook (environment)', type: 'webhook', variable: 'CERTCTL_WEBHOOK_URL', config: c.webhook ? { url: c.webhook.url } : null },
    {
      kind: 'notifier', id: ENV_IDS.slack, name: 'Slack (environment)', type: 'slack', variable: 'CERTCTL_SLACK_WEBHOOK_URL',
      config: c.slack ? defined({ webhook_url: c.slack.webhookUrl, channel: c.slack.channel, username: c.slack.username }) : null,
    },
    { kind: 'notifier', id: ENV_IDS.teams, name: 'Microsoft Teams (environment)', type: 'teams', variable: 'CERTCTL_TEAMS_WEBHOOK_URL', config: c.teams ? { webhook_url: c.teams.webhookUrl } : null },
    {
      kind: 'notifier', id: ENV_IDS.pagerduty, name: 'PagerDuty (environment)', type: 'pagerduty', variable: 'CERTCTL_PAGERDUTY_ROUTING_KEY',
      config: c.pagerduty ? { routing_key: c.pagerduty.routingKey, severity: c.pagerduty.severity } : null,
    },
    {
      kind: 'notifier', id: ENV_IDS.opsgenie, name: 'OpsGenie (environment)', type: 'opsgenie', variable: 'CERTCTL_OPSGENIE_API_KEY',
      config: c.opsgenie ? { api_key: c.opsgenie.apiKey, priority: c.opsgenie.priority } : null,
    },
  ];
}
