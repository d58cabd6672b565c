import { caFailureResult, definePlugin, type IssueRequest, type IssueResult, type PluginContext, type SignOrder } from '@certctl/sdk';
import { notAfterFor, escapeDnValue, sansFor } from './certificate-terms.js';
import { caRequestFor, localCaConfig } from './local-ca-config.js';

/**
 * The Local CA issuer. The CA itself lives in the kernel (ctx.ca): a self-signed
 * root the kernel makes for this issuer on first use, or the operator's sub-CA
 * from CERTCTL_CA_CERT_PATH / CERTCTL_CA_KEY_PATH. This plugin only decides the
 * certificate's terms (lifetime within the issuer's and the profile's caps, the
 * profile's EKUs, subject and SANs) and hands the kernel a sign order (SignOrder):
 * the kernel signs it with the issuer's CA as ctx.ca.sign would, without a round
 * trip back through this worker. It never holds a key.
 */
async function issue(request: IssueRequest, ctx: PluginContext): Promise<IssueResult | SignOrder> {
  const config = localCaConfig(ctx.config);
  const terms = notAfterFor(request, config, ctx.clock.now());
  if ('refused' in terms) return { status: 'denied', reason: terms.refused };
  const ekus = request.profile?.ekus?.length ? [...request.profile.ekus] : ['serverAuth'];
  const sans = sansFor(request, ekus);
  const cn = request.commonName?.trim();
  try {
    await ctx.ca.ensure(caRequestFor(config));
  } catch (err) {
    const result = caFailureResult(err);
    ctx.log.warn('certificate not issued', { certificate_id: request.certificateId, status: result.status, reason: result.reason });
    return result;
  }
  return {
    status: 'sign',
    sign: {
      csrPem: request.csrPem,
      notAfter: terms.notAfter,
      extendedKeyUsage: ekus,
      ...(cn ? { subject: `CN=${escapeDnValue(cn)}` } : {}),
      ...(sans.length ? { sans } : {}),
    },
  };
}

export default definePlugin({
  kind: 'issuer',
  issue,
  // A renewal is a new certificate for the (new) CSR from the same CA.
  renew: issue,
  async getCaChain(_request, ctx) {
    const ca = await ctx.ca.ensure(caRequestFor(localCaConfig(ctx.config)));
    return { chainPem: ca.chainPem };
  },
  async validateConfig(_request, ctx) {
    try {
      await ctx.ca.ensure(caRequestFor(localCaConfig(ctx.config)));
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
  },
});
