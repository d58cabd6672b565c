import { definePlugin, type PluginContext, type ProtocolHttpRequest, type ProtocolHttpResponse } from '@certctl/sdk';
import { pemBlocks } from './der.js';
import { csrAttrs } from './csrattrs.js';
import { endpointFor, type EstEndpoint } from './est-config.js';
import { simpleEnroll, simpleReenroll } from './est-enroll.js';
import { pkcs7Response, textError } from './http.js';
import { base64Lines, certsOnly } from './pkcs7.js';
import { serverKeygen } from './serverkeygen.js';

/*
 * The EST server (RFC 7030) at /.well-known/est/<operation> and, per configured
 * label, /.well-known/est/<label>/<operation>. Enrolment goes through the
 * kernel's issuance service (ctx.issuance); this plugin speaks the protocol,
 * authenticates callers and remembers which certificates it issued (ctx.kv).
 */

const OPERATIONS: Record<string, { method: 'GET' | 'POST'; run: (req: ProtocolHttpRequest, ep: EstEndpoint, ctx: PluginContext) => Promise<ProtocolHttpResponse> }> = {
  cacerts: { method: 'GET', run: caCerts },
  csrattrs: { method: 'GET', run: async (_req, ep) => csrAttributes(ep) },
  simpleenroll: { method: 'POST', run: simpleEnroll },
  simplereenroll: { method: 'POST', run: simpleReenroll },
  serverkeygen: { method: 'POST', run: serverKeygen },
};

/** The anonymous CA certificates distribution (RFC 7030 4.1): the issuer's chain, certs-only. */
async function caCerts(_req: ProtocolHttpRequest, ep: EstEndpoint, ctx: PluginContext): Promise<ProtocolHttpResponse> {
  const { chainPem } = await ctx.issuance.caChain({ issuerId: ep.issuerId });
  const ders = chainPem.flatMap((pem) => pemBlocks(pem, 'CERTIFICATE'));
  if (!ders.length) return textError(503, 'the CA certificates are not available yet', { 'Retry-After': '60' });
  return pkcs7Response(base64Lines(certsOnly(ders)));
}

function csrAttributes(ep: EstEndpoint): ProtocolHttpResponse {
  const der = csrAttrs(ep.csrAttributes);
  if (!der) return { status: 204 };
  return { status: 200, headers: { 'Content-Type': 'application/csrattrs', 'Content-Transfer-Encoding': 'base64' }, body: base64Lines(der) };
}

/** `/op` or `/label/op`; null for anything else. */
function parsePath(path: string): { label: string | null; op: string } | null {
  const parts = path.split('/').slice(1);
  if (parts.length === 1 && parts[0]) return { label: null, op: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { label: parts[0], op: parts[1] };
  return null;
}

export default definePlugin({
  kind: 'protocol',
  async handle(req, ctx) {
    const route = parsePath(req.path);
    const op = route && Object.hasOwn(OPERATIONS, route.op) ? OPERATIONS[route.op] : undefined;
    if (!route || !op) return textError(404, 'no such EST operation');
    const ep = endpointFor(ctx.config, route.label);
    if (!ep) return textError(404, `no EST endpoint is configured for label "${route.label}"`);
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (method !== op.method) return textError(405, `${route.op} expects ${op.method}`, { Allow: op.method });
    return op.run(req, ep, ctx);
  },
});
