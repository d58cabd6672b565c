import { definePlugin, type IssueRequest, type IssueResult, type PluginContext, type RevokeResult } from '@certctl/sdk';
import { accountClient } from './account.js';
import { acmeConfig, type AcmeConfig } from './config.js';
import { csrSignatureProblem } from './der.js';
import { directoryProblem, fetchRenewalInfo, readDirectory, type AcmeDirectory } from './directory.js';
import { advanceOrder, identifiersOf, placeOrder, replacedCertId, storedOrder } from './order-flow.js';
import { outcomeOf, REVOCATION_REASONS } from './outcome.js';
import { withAcmeScope, type CallScope } from './transport.js';

/** Runs fn inside the call's ACME scope; errors become failed/denied results. */
function scoped<T>(ctx: PluginContext, fn: (config: AcmeConfig, scope: CallScope) => Promise<T>, onError: (err: unknown, scope: CallScope) => T): Promise<T> {
  const config = acmeConfig(ctx.config);
  return withAcmeScope(config.directory_url, config.ca_certificates_pem, ctx.clock.deadline() - 1000, async (scope) => {
    try {
      return await fn(config, scope);
    } catch (err) {
      return onError(err, scope);
    }
  });
}

/** The CA's directory, and why it cannot serve this config (null when it can). */
async function checkedDirectory(ctx: PluginContext, config: AcmeConfig): Promise<{ dir: AcmeDirectory; problem: string | null }> {
  const dir = await readDirectory(config);
  const hasEab = Boolean(config.eab_kid && (await ctx.secrets.get('eab_hmac_key')));
  return { dir, problem: directoryProblem(dir, config, hasEab) };
}

/**
 * issue and renew: one new order for the CSR's names. On renewal, when the CA
 * offers ARI and this plugin issued the certificate being replaced, the order
 * carries `replaces` (RFC 9773 section 5) so the CA can link the two.
 */
function order(renewal: boolean) {
  return (request: IssueRequest, ctx: PluginContext): Promise<IssueResult> => {
    const bad = csrSignatureProblem(request.csrPem);
    if (bad) return Promise.resolve({ status: 'denied', reason: bad });
    try {
      if (!identifiersOf(request.csrPem).length) return Promise.resolve({ status: 'denied', reason: 'the CSR names no DNS name or IP address to order' });
    } catch (err) {
      return Promise.resolve({ status: 'denied', reason: `the CSR cannot be parsed: ${(err as Error).message}` });
    }
    return scoped<IssueResult>(ctx, async (config, scope) => {
      const { dir, problem } = await checkedDirectory(ctx, config);
      if (problem) return { status: 'failed', reason: problem, retryable: false };
      const client = await accountClient(ctx, config);
      const replaces = renewal && config.ari && dir.renewalInfo ? await replacedCertId(ctx, request.certificateId, request.previousSerialNumber) : null;
      try {
        return await placeOrder(ctx, config, client, request, replaces);
      } catch (err) {
        // A CA may refuse `replaces` (already replaced, not ours): order without it.
        if (!replaces || !/alreadyReplaced|replaces/i.test(`${scope.lastProblem?.type} ${scope.lastProblem?.detail}`)) throw err;
        ctx.log.warn('the CA refused the replaces field; ordering without it', { certificate_id: request.certificateId });
        scope.lastProblem = null;
        return await placeOrder(ctx, config, client, request, null);
      }
    }, (err, scope) => outcomeOf(err, scope.lastProblem));
  };
}

export default definePlugin({
  kind: 'issuer',
  issue: order(false),
  renew: order(true),
  async checkOrder(request, ctx) {
    const state = await storedOrder(ctx, request.orderId);
    if (!state) return { status: 'failed', reason: `order ${request.orderId} is unknown or expired; place a new one`, retryable: true };
    return scoped(ctx, async (config) => advanceOrder(ctx, config, await accountClient(ctx, config), state), (err, scope) => outcomeOf(err, scope.lastProblem));
  },
  async revoke(request, ctx) {
    if (!request.certificatePem) return { status: 'failed', reason: 'ACME revocation needs the certificate itself, not only its serial', retryable: false };
    const reason = REVOCATION_REASONS[request.reason] ?? 0;
    return scoped<RevokeResult>(ctx, async (config) => {
      const client = await accountClient(ctx, config);
      await client.revokeCertificate(request.certificatePem!, { reason });
      ctx.log.info('certificate revoked', { serial: request.serialNumber, reason: request.reason });
      return { status: 'revoked' as const };
    }, (err, scope) => {
      if (scope.lastProblem?.type.endsWith(':alreadyRevoked')) return { status: 'revoked' as const };
      const out = outcomeOf(err, scope.lastProblem);
      return { status: 'failed' as const, reason: out.reason, retryable: out.status === 'failed' && out.retryable };
    });
  },
  async renewalInfo(request, ctx) {
    const config = acmeConfig(ctx.config);
    return withAcmeScope(config.directory_url, config.ca_certificates_pem, ctx.clock.deadline() - 1000, () => fetchRenewalInfo(config, request.certificatePem));
  },
  async validateConfig(_request, ctx) {
    return scoped(ctx, async (config) => {
      const { problem } = await checkedDirectory(ctx, config);
      if (problem) return { ok: false as const, reason: problem };
      if (config.challenge_type === 'dns-01' && !config.dns_webhook_url) return { ok: false as const, reason: 'dns-01 needs dns_webhook_url' };
      return { ok: true as const };
    }, (err, scope) => ({ ok: false as const, reason: outcomeOf(err, scope.lastProblem).reason }));
  },
});
