import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { HttpResponse, Json } from '@certctl/sdk';
import { addressAllowed, classifyAddress, FetchPolicyRefusal, matchHostRule, normalizeAddress, parseFetchRequest, parseHostRules, urlHost, type FetchRequestParts, type HostRule } from '@certctl/sdk/policy';

export interface FetchLimits {
  /** Cap on any one request, whatever the plugin asks for. */
  hostTimeoutMs: number;
  maxResponseBytes: number;
  maxRequestBytes: number;
}

export const FETCH_DEFAULTS: FetchLimits = { hostTimeoutMs: 30_000, maxResponseBytes: 5 * 1024 * 1024, maxRequestBytes: 5 * 1024 * 1024 };

/** A refusal by policy (the plugin asked for something it may not have): capability_denied. */
export class FetchRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FetchRefused';
  }
}

/** A network outcome the plugin should handle itself (connection refused, timeout, DNS failure). */
export class FetchFailed extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'FetchFailed';
  }
}

export type LookupAll = (host: string) => Promise<{ address: string; family: number }[]>;
const systemLookup: LookupAll = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

function parseRequest(raw: Json, limits: FetchLimits): FetchRequestParts {
  try {
    return parseFetchRequest(raw, limits.maxRequestBytes);
  } catch (err) {
    if (err instanceof FetchPolicyRefusal) throw new FetchRefused(err.message);
    throw err;
  }
}

/** Picks the address to connect to: the first resolved one the rule allows. Refuses when none is. */
async function pinAddress(host: string, rule: HostRule, lookup: LookupAll): Promise<{ address: string; family: 4 | 6 }> {
  let addresses: { address: string; family: number }[];
  if (net.isIP(host)) addresses = [{ address: host, family: net.isIP(host) }];
  else {
    try {
      addresses = await lookup(host);
    } catch (err) {
      throw new FetchFailed(`cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'ENOTFOUND');
    }
  }
  const refused: string[] = [];
  for (const a of addresses) {
    const address = normalizeAddress(a.address);
    const cls = classifyAddress(address);
    if (addressAllowed(cls, address, rule)) return { address, family: net.isIP(address) === 6 ? 6 : 4 };
    refused.push(`${address} (${cls})`);
  }
  if (!refused.length) throw new FetchFailed(`cannot resolve ${host}: no addresses`, 'ENOTFOUND');
  const how = refused.some((r) => /\((metadata|unspecified)\)$/.test(r)) ? 'declare that exact IP address' : 'declare that exact host (not a wildcard)';
  throw new FetchRefused(`${host} resolves to ${refused.join(', ')}, which plugins may not reach unless the operator grants it (${how})`);
}

const decodeBody = (buf: Buffer): { body: string; bodyEncoding: 'utf8' | 'base64' } => {
  try {
    return { body: new TextDecoder('utf-8', { fatal: true }).decode(buf), bodyEncoding: 'utf8' };
  } catch {
    return { body: buf.toString('base64'), bodyEncoding: 'base64' };
  }
};

/**
 * http.fetch for a plugin: the URL's host must match a granted rule; the name is
 * resolved once and the connection goes to that checked address (so a DNS answer
 * that changes between check and connect cannot redirect it); loopback,
 * link-local, metadata and similar addresses are refused unless declared exactly.
 * Redirects are returned, not followed. Timeout is the least of the request's,
 * the host cap and the call's deadline; the response body is capped.
 */
export async function pinnedFetch(raw: Json, opts: { hosts: readonly string[] | undefined; deadline: number; limits?: Partial<FetchLimits>; lookup?: LookupAll }): Promise<HttpResponse> {
  const limits = { ...FETCH_DEFAULTS, ...opts.limits };
  const req = parseRequest(raw, limits);
  const rules = parseHostRules(opts.hosts);
  if (!rules.length) throw new FetchRefused('the plugin was granted no http hosts');
  const match = matchHostRule(rules, req.url);
  if ('reason' in match) throw new FetchRefused(`http.fetch refused: ${match.reason}`);
  const host = urlHost(req.url);
  const started = Date.now();
  const timeoutMs = Math.min(req.timeoutMs ?? limits.hostTimeoutMs, limits.hostTimeoutMs, opts.deadline - started);
  if (timeoutMs <= 0) throw new FetchFailed('http.fetch: the call has no time left', 'ETIMEDOUT');

  const pinned = await withTimeout(pinAddress(host, match.rule, opts.lookup ?? systemLookup), timeoutMs, host);
  const left = timeoutMs - (Date.now() - started);
  if (left <= 0) throw new FetchFailed(`http.fetch to ${host} timed out after ${timeoutMs} ms`, 'ETIMEDOUT');

  const isHttps = req.url.protocol === 'https:';
  const headers = { ...req.headers, ...(req.body ? { 'content-length': String(req.body.length) } : {}) };
  return new Promise<HttpResponse>((resolve, reject) => {
    let finished = false;
    const finish = (fn: () => void) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      fn();
    };
    const options: https.RequestOptions = {
      method: req.method,
      hostname: host,
      port: req.url.port ? Number(req.url.port) : isHttps ? 443 : 80,
      path: `${req.url.pathname}${req.url.search}`,
      headers,
      agent: false,
      // The connection goes to the address checked above, whatever DNS says now.
      lookup: ((_h: string, o: { all?: boolean }, cb: (...args: unknown[]) => void) => {
        if (o?.all) cb(null, [{ address: pinned.address, family: pinned.family }]);
        else cb(null, pinned.address, pinned.family);
      }) as never,
      ...(isHttps && !net.isIP(host) ? { servername: host } : {}),
    };
    const request = (isHttps ? https : http).request(options, (res) => {
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > limits.maxResponseBytes) {
        res.destroy();
        return finish(() => reject(new FetchRefused(`http.fetch: the response from ${host} is ${declared} bytes, over the ${limits.maxResponseBytes}-byte limit`)));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limits.maxResponseBytes) {
          res.destroy();
          request.destroy();
          return finish(() => reject(new FetchRefused(`http.fetch: the response from ${host} exceeds the ${limits.maxResponseBytes}-byte limit`)));
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => finish(() => reject(new FetchFailed(`http.fetch to ${host} failed: ${err.message}`, 'ECONNRESET'))));
      res.on('end', () => finish(() => {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
        resolve({ status: res.statusCode ?? 0, headers: out, ...decodeBody(Buffer.concat(chunks)) });
      }));
    });
    const timer = setTimeout(() => {
      request.destroy();
      finish(() => reject(new FetchFailed(`http.fetch to ${host} timed out after ${Math.round(timeoutMs)} ms`, 'ETIMEDOUT')));
    }, left);
    request.on('error', (err: NodeJS.ErrnoException) => finish(() => reject(new FetchFailed(`http.fetch to ${host} failed: ${err.code ?? err.message}`, err.code ?? 'EFETCH'))));
    request.end(req.body ?? undefined);
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, host: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new FetchFailed(`http.fetch: resolving ${host} timed out`, 'ETIMEDOUT')), ms); }),
  ]).finally(() => clearTimeout(timer));
}
