import crypto from 'node:crypto';
import type http from 'node:http';
import type { KernelServices } from '../kernel-services.js';
import type { CrlState } from './crl-service.js';
import { MALFORMED, TRY_LATER, type OcspAnswer } from './ocsp-service.js';
import { revocationOf } from './revocation-services.js';

/*
 * The relying-party endpoints, /.well-known/pki/crl/{issuer}[/{ca}] and
 * /.well-known/pki/ocsp/{issuer}[/{base64 request}], served in front of the API
 * pipeline. They are anonymous protocol traffic at high rates (every TLS client
 * checking a certificate): they carry no API key, must not write an audit row or
 * an access-log line per request, and answer errors in their own protocol (an
 * OCSP status, never a JSON 500). Each client address gets a token bucket
 * (CERTCTL_PKI_RATE_LIMIT_RPS/_BURST); past it OCSP answers tryLater and CRL
 * fetches 429. The same paths are in the route table (kernel/src/revocation/
 * routes.ts) for the OpenAPI document and for servers built without this handler.
 */

const PREFIX = '/.well-known/pki/';
const MAX_OCSP_BODY = 8 * 1024;
const OCSP_TYPE = 'application/ocsp-response';
const CRL_TYPE = 'application/pkix-crl';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

class Buckets {
  private readonly map = new Map<string, { tokens: number; at: number }>();
  private sweptAt = Date.now();
  constructor(private readonly rps: number, private readonly burst: number) {}

  take(key: string): boolean {
    const now = Date.now();
    if (now - this.sweptAt > 60_000) {
      this.sweptAt = now;
      const idle = (this.burst / this.rps) * 1000 + 60_000;
      for (const [k, b] of this.map) if (now - b.at > idle) this.map.delete(k);
    }
    const b = this.map.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rps);
    b.at = now;
    this.map.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

const httpDate = (ms: number) => new Date(ms).toUTCString();

/** Headers of a CRL response (also used by the API routes). */
export function crlHeaders(state: CrlState, now = Date.now()): Record<string, string> {
  const maxAge = Math.max(0, Math.floor((state.next_update.getTime() - now) / 1000));
  return {
    'Content-Type': CRL_TYPE,
    ETag: `"${state.etag}"`,
    'Last-Modified': httpDate(state.this_update.getTime()),
    Expires: httpDate(state.next_update.getTime()),
    // A cache may keep it until nextUpdate at most; after a revocation a conditional GET finds the new one.
    'Cache-Control': `public, max-age=${Math.min(maxAge, 300)}, no-transform`,
  };
}

/** Headers of an OCSP response (RFC 5019 6: cacheable when it carries no nonce). */
export function ocspHeaders(a: OcspAnswer, now = Date.now()): Record<string, string> {
  const h: Record<string, string> = { 'Content-Type': OCSP_TYPE };
  if (a.cacheable && a.nextUpdate) {
    h['Cache-Control'] = `public, max-age=${Math.max(0, Math.floor((a.nextUpdate - now) / 1000))}, no-transform`;
    h['Last-Modified'] = httpDate(a.producedAt);
    h.Expires = httpDate(a.nextUpdate);
    h.ETag = `"${crypto.createHash('sha1').update(a.der).digest('hex')}"`;
  } else {
    h['Cache-Control'] = 'no-store';
  }
  return h;
}

export const etagMatches = (ifNoneMatch: string | undefined, etag: string) =>
  Boolean(ifNoneMatch) && ifNoneMatch!.split(',').map((t) => t.trim().replace(/^W\//, '')).includes(`"${etag}"`);

/** Decodes the GET form: the DER request, base64 then URL-encoded (RFC 6960 A.1). */
export function decodeOcspGet(encoded: string): Buffer | null {
  let text: string;
  try {
    text = decodeURIComponent(encoded);
  } catch {
    return null;
  }
  if (!text || text.length > 4 * MAX_OCSP_BODY || !/^[A-Za-z0-9+/=_-]+$/.test(text)) return null;
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

function send(res: http.ServerResponse, status: number, headers: Record<string, string>, body: Buffer | string): void {
  res.writeHead(status, { 'X-Content-Type-Options': 'nosniff', 'Content-Length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

const jsonError = (res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  send(res, status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers }, JSON.stringify({ error: { code, message } }));

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        resolve(null);
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(null));
  });
}

/** Wraps the API's request handler: PKI paths are answered here, everything else passes through. */
export function pkiRequestHandler(k: KernelServices, next: Handler): Handler {
  const buckets = new Buckets(k.config.pkiRateLimit.rps, k.config.pkiRateLimit.burst);
  const rev = () => revocationOf(k);

  async function ocsp(req: http.IncomingMessage, res: http.ServerResponse, issuerId: string, rest: string): Promise<void> {
    let answer: OcspAnswer;
    if (!buckets.take(req.socket.remoteAddress ?? '')) answer = TRY_LATER();
    else if (req.method === 'POST' && !rest) {
      const body = await readBody(req, MAX_OCSP_BODY);
      answer = body?.length ? await rev().ocsp.answer(issuerId, body) : MALFORMED();
    } else if (req.method === 'GET' && rest) {
      const body = decodeOcspGet(rest);
      answer = body?.length ? await rev().ocsp.answer(issuerId, body) : MALFORMED();
    } else {
      jsonError(res, 405, 'method_not_allowed', 'OCSP takes POST /.well-known/pki/ocsp/{issuer} or GET /.well-known/pki/ocsp/{issuer}/{base64 request}', { Allow: rest ? 'GET' : 'POST' });
      return;
    }
    send(res, 200, ocspHeaders(answer), answer.der);
  }

  async function crl(req: http.IncomingMessage, res: http.ServerResponse, issuerId: string, caId: string | undefined): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return jsonError(res, 405, 'method_not_allowed', 'Method not allowed', { Allow: 'GET, HEAD' });
    if (!buckets.take(req.socket.remoteAddress ?? '')) return jsonError(res, 429, 'rate_limited', 'Too many requests', { 'Retry-After': '1' });
    const state = await rev().crl.current(issuerId, caId);
    if (!state) return jsonError(res, 404, 'not_found', `Issuer ${issuerId} has no${caId ? ` publishing CA ${caId}` : ' CA'} whose CRL this server publishes`);
    const headers = crlHeaders(state);
    if (etagMatches(req.headers['if-none-match'], state.etag)) {
      res.writeHead(304, { ETag: headers.ETag, 'Cache-Control': headers['Cache-Control'], Expires: headers.Expires });
      res.end();
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': String(state.der.length) });
      res.end();
      return;
    }
    send(res, 200, headers, state.der);
  }

  return (req, res) => {
    const url = req.url ?? '';
    if (!url.startsWith(PREFIX)) return next(req, res);
    const path = url.split('?')[0];
    const m = /^\/\.well-known\/pki\/(ocsp|crl)\/([^/]+)(?:\/(.*))?$/.exec(path);
    if (!m) return next(req, res);
    let issuerId: string;
    try {
      issuerId = decodeURIComponent(m[2]);
    } catch {
      return next(req, res);
    }
    let work: Promise<void>;
    if (m[1] === 'ocsp') work = ocsp(req, res, issuerId, m[3] ?? '');
    else if (m[3] && !/^[A-Za-z0-9-]{1,64}$/.test(m[3])) return next(req, res);
    else work = crl(req, res, issuerId, m[3]);
    work.catch((err: unknown) => {
      k.log.error({ err, path }, 'PKI endpoint failed');
      if (res.headersSent) return res.destroy();
      if (m[1] === 'ocsp') send(res, 200, { 'Content-Type': OCSP_TYPE, 'Cache-Control': 'no-store' }, Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x02]));
      else jsonError(res, 503, 'not_ready', 'The CRL cannot be served right now');
    });
  };
}
