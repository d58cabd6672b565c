import type { ConformanceOptions } from '@certctl/sdk/testing';

/** Answers like Slack's incoming webhooks: 200 "ok" for a message with text, 400 invalid_payload otherwise. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { username: 'certctl' },
    secrets: { webhook_url: 'https://hooks.slack.com/services/T000/B000/XXXXXXXX' },
    grants: { http: { hosts: ['hooks.slack.com:443'] } },
    http: (req) => {
      const body = JSON.parse(req.body ?? '{}') as { text?: unknown; blocks?: unknown };
      return typeof body.text === 'string' && Array.isArray(body.blocks) ? { status: 200, body: 'ok' } : { status: 400, body: 'invalid_payload' };
    },
  };
}
