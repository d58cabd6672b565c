import { definePlugin } from '@certctl/sdk';
import { postJson } from '@certctl/sdk/notify';
import { pagerDutyEvent } from './payload.js';

/** PagerDuty Events API v2: POST {api_url}/v2/enqueue. The routing key is a secret. */
export default definePlugin({
  kind: 'notifier',
  async notify(req, ctx) {
    const routingKey = await ctx.secrets.get('routing_key');
    if (!routingKey) return { status: 'failed', reason: 'pagerduty: routing_key is not set', retryable: false };
    const c = ctx.config as { api_url: string; source: string; severity?: 'critical' | 'error' | 'warning' | 'info'; resolve_on_success: boolean };
    const event = pagerDutyEvent(req, { routingKey, source: c.source, severity: c.severity, resolveOnSuccess: c.resolve_on_success, nowMs: ctx.clock.now() });
    return postJson(ctx, 'pagerduty', `${c.api_url.replace(/\/+$/, '')}/v2/enqueue`, event);
  },
});
