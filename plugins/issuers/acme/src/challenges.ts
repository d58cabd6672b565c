import type acme from 'acme-client';
import type { PluginContext } from '@certctl/sdk';
import { kvKeys, type AcmeConfig } from './config.js';

type Challenge = acme.Authorization['challenges'][number];

/** What was published for one order, so it can be taken down again. */
export interface Published {
  tokens: string[];
  records: { fqdn: string; value: string }[];
}

/** Key authorizations outlive a slow validation but not a forgotten order. */
const HTTP01_TTL_SECONDS = 24 * 3600;

/**
 * dns-01 through the operator's DNS webhook (the lego "httpreq" convention: POST
 * {base}/present and {base}/cleanup with {fqdn, value}), called through the
 * broker's http.fetch, whose grant is the webhook URL's origin. Any 2xx counts.
 */
async function dnsWebhook(ctx: PluginContext, config: AcmeConfig, action: 'present' | 'cleanup', record: { fqdn: string; value: string }): Promise<void> {
  if (!config.dns_webhook_url) throw Object.assign(new Error('dns-01 needs dns_webhook_url (the DNS webhook that publishes _acme-challenge TXT records)'), { operator: true });
  const token = await ctx.secrets.get('dns_webhook_token');
  const res = await ctx.http.fetch({
    url: `${config.dns_webhook_url.replace(/\/+$/, '')}/${action}`,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(record),
    timeoutMs: 15_000,
  });
  if (res.status < 200 || res.status > 299) throw new Error(`DNS webhook ${action} for ${record.fqdn} answered HTTP ${res.status}`);
}

/**
 * Makes each pending authorization's challenge answerable and tells the CA to
 * validate it. http-01: the key authorization goes into kv under its token and the
 * kernel's public route /.well-known/acme-challenge/{token} serves it. dns-01: the
 * TXT record goes out through the DNS webhook.
 */
export async function presentChallenges(ctx: PluginContext, config: AcmeConfig, client: acme.Client, authorizations: acme.Authorization[]): Promise<Published> {
  const published: Published = { tokens: [], records: [] };
  const ready: Challenge[] = [];
  for (const authz of authorizations) {
    if (authz.status !== 'pending') continue;
    const challenge = authz.challenges.find((c) => c.type === config.challenge_type);
    if (!challenge) throw Object.assign(new Error(`the CA offers no ${config.challenge_type} challenge for ${authz.identifier.value} (offered: ${authz.challenges.map((c) => c.type).join(', ')})`), { operator: true });
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    if (challenge.type === 'http-01') {
      await ctx.kv.set(kvKeys.http01(challenge.token), keyAuthorization, { ttlSeconds: HTTP01_TTL_SECONDS });
      published.tokens.push(challenge.token);
    } else {
      const record = { fqdn: `_acme-challenge.${authz.identifier.value.replace(/^\*\./, '')}.`, value: keyAuthorization };
      await dnsWebhook(ctx, config, 'present', record);
      published.records.push(record);
    }
    ready.push(challenge);
  }
  if (published.records.length && config.dns_propagation_seconds > 0) {
    const wait = Math.min(config.dns_propagation_seconds * 1000, Math.max(0, ctx.clock.deadline() - ctx.clock.now() - 5000));
    await new Promise((r) => setTimeout(r, wait));
  }
  for (const challenge of ready) await client.completeChallenge(challenge);
  return published;
}

/** Takes down what presentChallenges put up; failures are logged, never fatal. */
export async function withdrawChallenges(ctx: PluginContext, config: AcmeConfig, published: Published): Promise<void> {
  for (const token of published.tokens) await ctx.kv.delete(kvKeys.http01(token)).catch(() => undefined);
  for (const record of published.records) {
    await dnsWebhook(ctx, config, 'cleanup', record).catch((err) => ctx.log.warn('DNS cleanup failed', { fqdn: record.fqdn, reason: String((err as Error).message) }));
  }
}
