import { definePlugin, type PluginContext, type ProtocolHttpRequest, type ProtocolHttpResponse } from '@certctl/sdk';
import { textError } from './cert-rep.js';
import { certsOnly, pemDers } from './cms.js';
import { parsePkiMessage } from './pki-message.js';
import { endpointFor, labelOfPath, type ScepEndpoint } from './scep-config.js';
import { pkiOperation } from './scep-enroll.js';

/*
 * The SCEP server (RFC 8894) at /scep and, per configured label, /scep/{label}
 * (a trailing /pkiclient.exe is accepted too). One URL, the operation in the
 * query: GetCACaps, GetCACert, PKIOperation (POST, or GET with the message in
 * base64). Enrolment goes through the kernel's issuance service; the RA key that
 * decrypts requests and signs replies stays in the kernel (ctx.issuance.ra*).
 */

/**
 * What an endpoint does (RFC 8894 3.5.2): Renewal only where it is allowed. No
 * GetNextCACert: RA and CA changes are picked up by GetCACert.
 */
const capabilities = (ep: ScepEndpoint) => ['AES', 'DES3', 'POSTPKIOperation', ...(ep.allowRenewal ? ['Renewal'] : []), 'SHA-1', 'SHA-256', 'SHA-512', 'SCEPStandard'];
/** A GET PKIOperation message, base64: the body limit's worth. */
const MAX_GET_MESSAGE = 90_000;

/** The RA certificate and the CA chain, RA first (RFC 8894 4.2.1.2: an RA is present, so certs-only PKCS#7). */
async function getCaCert(ep: ScepEndpoint, ctx: PluginContext): Promise<ProtocolHttpResponse> {
  const ra = await ctx.issuance.raCertificate({ issuerId: ep.issuerId });
  const der = certsOnly(pemDers([ra.certificatePem, ...ra.chainPem]));
  return { status: 200, headers: { 'Content-Type': 'application/x-x509-ca-ra-cert' }, body: der.toString('base64'), bodyEncoding: 'base64' };
}

/** The pkiMessage of a PKIOperation: the raw DER body of a POST (base64 text accepted), or the base64 `message` of a GET. */
function messageBytes(req: ProtocolHttpRequest, method: string): Buffer | null {
  let text: string;
  if (method === 'POST') {
    const body = Buffer.from(req.body, 'base64');
    if (body[0] === 0x30) return body;
    text = body.toString('latin1');
  } else {
    // A `+` that the client did not percent-encode arrives as a space.
    text = (req.query.message ?? '').replace(/ /g, '+');
    if (text.length > MAX_GET_MESSAGE) return null;
  }
  const compact = text.replace(/[\r\n\t]/g, '');
  if (!compact || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return null;
  return Buffer.from(compact, 'base64');
}

async function handle(req: ProtocolHttpRequest, ctx: PluginContext): Promise<ProtocolHttpResponse> {
  const route = labelOfPath(req.path);
  if (!route) return textError(404, 'no such SCEP endpoint');
  const ep = endpointFor(ctx.config, route.label);
  if (!ep) return textError(404, `no SCEP endpoint is configured for label "${route.label}"`);
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const operation = req.query.operation;
  switch (operation) {
    case 'GetCACaps':
      if (method !== 'GET') return textError(405, 'GetCACaps expects GET', { Allow: 'GET' });
      return { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: `${capabilities(ep).join('\n')}\n` };
    case 'GetCACert':
      if (method !== 'GET') return textError(405, 'GetCACert expects GET', { Allow: 'GET' });
      return getCaCert(ep, ctx);
    case 'PKIOperation': {
      if (method !== 'GET' && method !== 'POST') return textError(405, 'PKIOperation expects POST (or GET with `message`)', { Allow: 'GET, POST' });
      const der = messageBytes(req, method);
      if (!der) return textError(400, 'PKIOperation needs a DER pkiMessage (POST body, or base64 in `message` for GET)');
      const parsed = parsePkiMessage(der);
      if (!parsed.ok) return textError(400, `not a SCEP pkiMessage: ${parsed.reason}`);
      return pkiOperation(ctx, ep, parsed.message, req.remoteAddress);
    }
    default:
      return textError(400, 'unknown or missing operation (GetCACaps, GetCACert or PKIOperation)');
  }
}

export default definePlugin({ kind: 'protocol', handle });
