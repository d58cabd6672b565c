import { definePlugin } from '@certctl/sdk';
import { postJson, RESOLVING_TYPES } from '@certctl/sdk/notify';
import { closeAlert, createAlert, type Priority } from './payload.js';

/**
 * OpsGenie Alert API v2 with `Authorization: GenieKey <key>`: problems create an
 * alert (POST /v2/alerts); RenewalSuccess/DeploymentSuccess close the
 * certificate's alert by alias. The API key is a secret.
 */
export default definePlugin({
  kind: 'notifier',
  async notify(req, ctx) {
    const key = await ctx.secrets.get('api_key');
    if (!key) return { status: 'failed', reason: 'opsgenie: api_key is not set', retryable: false };
    const c = ctx.config as { api_url: string; priority?: Priority; tags: string[]; close_on_success: boolean };
    const base = c.api_url.replace(/\/+$/, '');
    const auth = { authorization: `GenieKey ${key}` };
    if (RESOLVING_TYPES.has(req.type) && c.close_on_success && req.certificate) {
      const close = closeAlert(req);
      return postJson(ctx, 'opsgenie', `${base}${close.path}`, close.body, auth);
    }
    return postJson(ctx, 'opsgenie', `${base}/v2/alerts`, createAlert(req, { priority: c.priority, tags: c.tags }), auth);
  },
});
