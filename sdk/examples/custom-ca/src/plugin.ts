import { definePlugin, type HttpRequest, type HttpResponse, type IssueRequest, type IssueResult, type PluginContext } from '@certctl/sdk';
import { chainFrom, issueResultFrom, revokeResultFrom } from './ca-api.js';

/**
 * A third-party issuer written only against @certctl/sdk: it asks an HTTP CA
 * service to sign the CSR. Everything it can reach comes from its context: its
 * config (url, profile), its secret (token) and http.fetch limited to the hosts
 * the operator granted. No Node APIs: it runs in a V8 isolate.
 */

interface Config {
  url: string;
  profile?: string;
}

const config = (ctx: PluginContext) => ctx.config as unknown as Config;
const endpoint = (ctx: PluginContext, path: string) => `${config(ctx).url.replace(/\/+$/, '')}${path}`;

/** A refusal by the host (ungranted host, bad request shape) is a configuration problem: let it fail the call. */
const isHostRefusal = (err: unknown) => (err as { code?: unknown } | null)?.code === 'capability_denied';

async function callCa(ctx: PluginContext, request: HttpRequest): Promise<HttpResponse> {
  const token = await ctx.secrets.get('token');
  if (!token) throw new Error('the issuer has no token configured');
  const timeoutMs = Math.max(1000, Math.min(30_000, ctx.clock.deadline() - ctx.clock.now() - 500));
  return ctx.http.fetch({ ...request, headers: { ...request.headers, authorization: `Bearer ${token}`, accept: 'application/json' }, timeoutMs });
}

/** Network trouble is "try again later", not an error of the call. */
async function asIssueResult(ctx: PluginContext, request: HttpRequest): Promise<IssueResult> {
  try {
    return issueResultFrom(await callCa(ctx, request));
  } catch (err) {
    if (isHostRefusal(err)) throw err;
    ctx.log.warn('CA request failed', { url: request.url, error: String((err as Error)?.message ?? err) });
    return { status: 'failed', reason: `cannot reach the CA: ${String((err as Error)?.message ?? err)}`, retryable: true };
  }
}

function signRequest(ctx: PluginContext, request: IssueRequest): HttpRequest {
  const { profile } = config(ctx);
  return {
    url: endpoint(ctx, '/sign'),
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      csr: request.csrPem,
      certificate_id: request.certificateId,
      common_name: request.commonName,
      sans: request.sans,
      ...(profile ? { profile } : {}),
      ...(request.notAfter ? { not_after: request.notAfter } : {}),
    }),
  };
}

export default definePlugin({
  kind: 'issuer',

  async issue(request, ctx) {
    ctx.log.info('requesting a certificate', { certificate_id: request.certificateId, common_name: request.commonName });
    return asIssueResult(ctx, signRequest(ctx, request));
  },

  async checkOrder(request, ctx) {
    return asIssueResult(ctx, { url: endpoint(ctx, `/orders/${encodeURIComponent(request.orderId)}`) });
  },

  async getCaChain(_request, ctx) {
    return { chainPem: chainFrom(await callCa(ctx, { url: endpoint(ctx, '/ca') })) };
  },

  async revoke(request, ctx) {
    try {
      return revokeResultFrom(await callCa(ctx, {
        url: endpoint(ctx, '/revoke'),
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ serial: request.serialNumber, reason: request.reason }),
      }));
    } catch (err) {
      if (isHostRefusal(err)) throw err;
      return { status: 'failed', reason: `cannot reach the CA: ${String((err as Error)?.message ?? err)}`, retryable: true };
    }
  },

  async validateConfig(_request, ctx) {
    try {
      chainFrom(await callCa(ctx, { url: endpoint(ctx, '/ca') }));
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: String((err as Error)?.message ?? err) };
    }
  },
});
