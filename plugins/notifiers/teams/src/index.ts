import { definePlugin } from '@certctl/sdk';
import { postJson } from '@certctl/sdk/notify';
import { adaptiveCardMessage, messageCard } from './payload.js';

/** Microsoft Teams incoming webhook. The webhook URL is a secret: read through ctx.secrets, never logged. */
export default definePlugin({
  kind: 'notifier',
  async notify(req, ctx) {
    const url = await ctx.secrets.get('webhook_url');
    if (!url) return { status: 'failed', reason: 'teams: webhook_url is not set', retryable: false };
    const payload = ctx.config.format === 'adaptive_card' ? adaptiveCardMessage(req) : messageCard(req);
    return postJson(ctx, 'teams', url, payload);
  },
});
