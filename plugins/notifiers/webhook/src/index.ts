import { definePlugin } from '@certctl/sdk';
import { sendHttp } from '@certctl/sdk/notify';
import { signBody, webhookBody } from './payload.js';

/**
 * Generic webhook: one JSON POST per notification. Headers: X-Certctl-Event
 * (the notification type), X-Certctl-Notification-Id, X-Certctl-Timestamp
 * (Unix seconds, also in the body) and, with a secret configured,
 * X-Certctl-Signature: sha256=<hex HMAC-SHA256 of the raw body>.
 */
export default definePlugin({
  kind: 'notifier',
  async notify(req, ctx) {
    const body = webhookBody(req, ctx.clock.now());
    const raw = JSON.stringify(body);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'certctl-webhook/1',
      'x-certctl-event': req.type,
      'x-certctl-notification-id': req.notificationId,
      'x-certctl-timestamp': String(body.timestamp),
    };
    const secret = await ctx.secrets.get('secret');
    if (secret) headers['x-certctl-signature'] = signBody(secret, raw);
    return sendHttp(ctx, 'webhook', { url: String(ctx.config.url), method: 'POST', headers, body: raw });
  },
});
