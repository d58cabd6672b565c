import type { ConformanceOptions } from '@certctl/sdk/testing';

/** Answers like a Teams connector webhook: 200 with body "1" for a MessageCard. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { format: 'message_card' },
    secrets: { webhook_url: 'https://example.webhook.office.com/webhookb2/conformance/IncomingWebhook/abc/def' },
    grants: { http: { hosts: ['example.webhook.office.com:443'] } },
    http: (req) => {
      const body = JSON.parse(req.body ?? '{}') as Record<string, unknown>;
      return body['@type'] === 'MessageCard' && typeof body.summary === 'string' ? { status: 200, body: '1' } : { status: 400, body: 'Summary or Text is required.' };
    },
  };
}
