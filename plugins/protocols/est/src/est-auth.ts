import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import type { EnrollRequester, PluginContext, ProtocolHttpRequest, ProtocolHttpResponse } from '@certctl/sdk';
import { pemBlocks } from './der.js';
import type { EstEndpoint } from './est-config.js';
import { textError } from './http.js';

export type AuthOutcome = { ok: true; requester: EnrollRequester } | { ok: false; response: ProtocolHttpResponse };

const REALM = 'certctl EST';
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time: both sides are hashed first, so neither length nor content leaks through timing. */
const sameSecret = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

export function clientCertificate(req: ProtocolHttpRequest): X509Certificate | null {
  if (!req.clientCertificatePem) return null;
  try {
    return new X509Certificate(req.clientCertificatePem);
  } catch {
    return null;
  }
}

export const fingerprintOf = (cert: X509Certificate): string => createHash('sha256').update(cert.raw).digest('hex');

/** A short, log-safe name for a certificate: its subject CN, else its fingerprint. */
export function certificateName(cert: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return (cn ?? fingerprintOf(cert)).slice(0, 200);
}

async function checkBasic(req: ProtocolHttpRequest, ep: EstEndpoint, ctx: PluginContext): Promise<EnrollRequester | null> {
  const header = req.headers.authorization ?? '';
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  let expected: string | undefined;
  for (const path of ep.passwordPaths) {
    expected = await ctx.secrets.get(path);
    if (expected) break;
  }
  // Both comparisons always run, so a wrong user name costs the same as a wrong password.
  const userOk = sameSecret(user, ep.username);
  const passwordOk = expected !== undefined && sameSecret(password, expected);
  return userOk && passwordOk ? { kind: 'est-basic', id: user } : null;
}

/** The CA certificates client certificates must be issued by: configured ones, else the issuer's chain. */
async function trustAnchors(ep: EstEndpoint, ctx: PluginContext): Promise<X509Certificate[]> {
  const pems = ep.clientCaPem ? pemBlocks(ep.clientCaPem, 'CERTIFICATE') : (await ctx.issuance.caChain({ issuerId: ep.issuerId })).chainPem.flatMap((p) => pemBlocks(p, 'CERTIFICATE'));
  return pems.map((der) => new X509Certificate(der));
}

/** Whether a client certificate is current and signed by one of the anchors. */
export async function trustedClientCertificate(cert: X509Certificate, ep: EstEndpoint, ctx: PluginContext): Promise<boolean> {
  const now = ctx.clock.now();
  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) return false;
  for (const ca of await trustAnchors(ep, ctx)) {
    if (cert.checkIssued(ca) && cert.verify(ca.publicKey)) return true;
  }
  return false;
}

/**
 * Authenticates an enrolment by the endpoint's mode. HTTP basic failures get a
 * Basic challenge (401); a missing or untrusted client certificate is a 403,
 * since no header can fix it.
 */
export async function authenticate(req: ProtocolHttpRequest, ep: EstEndpoint, ctx: PluginContext): Promise<AuthOutcome> {
  if (ep.auth !== 'basic') {
    const cert = clientCertificate(req);
    if (cert && (await trustedClientCertificate(cert, ep, ctx))) return { ok: true, requester: { kind: 'est-client-cert', id: certificateName(cert) } };
    if (ep.auth === 'client-certificate') return { ok: false, response: textError(403, 'a trusted TLS client certificate is required') };
  }
  const basic = await checkBasic(req, ep, ctx);
  if (basic) return { ok: true, requester: basic };
  return { ok: false, response: textError(401, 'authentication required', { 'WWW-Authenticate': `Basic realm="${REALM}", charset="UTF-8"` }) };
}
