import { definePlugin } from '@certctl/sdk';
import { postJson } from '@certctl/sdk/notify';
import { slackPayload } from './payload.js';

/** Slack incoming webhook. The webhook URL is a secret: it is read through ctx.secrets and never logged. */
export default definePlugin({
  kind: 'notifier',
  async notify(req, ctx) {
    const url = await ctx.secrets.get('webhook_url');
    if (!url) return { status: 'failed', reason: 'slack: webhook_url is not set', retryable: false };
    const c = ctx.config as { channel?: string; username?: string; icon_emoji?: string };
    return postJson(ctx, 'slack', url, slackPayload(req, c));
  },
});
