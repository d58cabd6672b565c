import { AsyncLocalStorage } from 'node:async_hooks';
import https from 'node:https';
import tls from 'node:tls';
import net from 'node:net';
import acme from 'acme-client';
import { classifyAddress, type AddressClass } from '@certctl/sdk/policy';

/** An RFC 7807 problem document the CA answered with. */
export interface AcmeProblem {
  type: string;
  detail: string;
  status: number;
}

/** Per-call network settings and what the CA said last; found through the async context. */
export interface CallScope {
  /** The only host ACME requests may go to: the directory URL's. */
  host: string;
  agent: https.Agent;
  /** Epoch ms after which no request is started. */
  deadline: number;
  lastProblem: AcmeProblem | null;
}

const scopes = new AsyncLocalStorage<CallScope>();
let installed = false;

/** Each request waits at most this long, and never past the call's deadline. */
const REQUEST_TIMEOUT_MS = 15_000;

/** Cap on one response body: ACME documents and certificate chains are small. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

const REFUSED_CLASSES: ReadonlySet<AddressClass> = new Set(['link-local', 'metadata', 'unspecified']);

/** An IP literal host (however spelled: IPv4-mapped, bracketed IPv6) in a class no ACME request may go to. */
function refusedAddress(hostname: string): boolean {
  const bare = hostname.replace(/^\[|\]$/g, '');
  return net.isIP(bare) !== 0 && REFUSED_CLASSES.has(classifyAddress(bare));
}

/** A failure with no `config`, so acme-client's retry interceptor passes it on untouched. */
const refused = (message: string) => new Error(`acme: ${message}`);

/**
 * acme-client talks HTTP through one module-wide axios instance. This first-party
 * plugin runs as trusted code in a worker thread and lets acme-client open its own
 * HTTPS connections (per-issuer trust anchors for private ACME CAs, which the
 * broker's http.fetch has no place for, and keep-alive across the dozen requests of
 * one order), but through this adapter only: inside a call scope, HTTPS only, to the configured
 * directory's host only, no redirects or proxies, the scope's trust store, each
 * request capped by the call's deadline and the body by MAX_RESPONSE_BYTES. Every
 * response resolves (acme-client checks statuses itself) and failures carry no
 * axios config, which keeps the library's sleeping retries out of the call: the
 * kernel retries whole calls instead.
 */
function adapter(config: { url?: string; baseURL?: string; method?: string; data?: unknown; headers?: unknown }): Promise<unknown> {
  const scope = scopes.getStore();
  if (!scope) return Promise.reject(refused('HTTP request outside a plugin call'));
  let url: URL;
  try {
    url = new URL(config.url ?? '', config.baseURL);
  } catch {
    return Promise.reject(refused(`bad URL ${JSON.stringify(String(config.url).slice(0, 200))}`));
  }
  if (url.protocol !== 'https:') return Promise.reject(refused(`refusing ${url.protocol} request to ${url.host}: ACME runs over HTTPS only`));
  if (url.hostname !== scope.host) return Promise.reject(refused(`refusing request to ${url.host}: only the directory's host ${scope.host} may be called`));
  // As the broker does for every plugin: link-local (cloud metadata) and unspecified addresses are never called.
  if (refusedAddress(url.hostname)) return Promise.reject(refused(`refusing request to ${url.host}: link-local and unspecified addresses are never called`));
  const left = Math.min(REQUEST_TIMEOUT_MS, scope.deadline - Date.now());
  if (left <= 0) return Promise.reject(refused('the call has no time left for another request'));
  const headers: Record<string, string> = {};
  const given = (config.headers as { toJSON?: () => Record<string, unknown> })?.toJSON?.() ?? (config.headers as Record<string, unknown>) ?? {};
  for (const [k, v] of Object.entries(given)) if (v !== undefined && v !== null && v !== false) headers[k] = String(v);
  const body = typeof config.data === 'string' ? config.data : config.data === undefined || config.data === null ? undefined : JSON.stringify(config.data);
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const method = (config.method ?? 'get').toUpperCase();
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, agent: scope.agent, timeout: left }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RESPONSE_BYTES) return req.destroy(refused(`the response from ${url.host} is over ${MAX_RESPONSE_BYTES} bytes`));
        chunks.push(c);
      });
      res.on('error', (err) => reject(refused(`reading from ${url.host} failed: ${err.message}`)));
      res.on('end', () => {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
        resolve({ data: Buffer.concat(chunks).toString('utf8'), status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: out, config, request: req });
      });
    });
    req.on('timeout', () => req.destroy(refused(`${method} ${url.host}${url.pathname} timed out after ${left} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err.message.startsWith('acme: ') ? err : refused(`connecting to ${url.host} failed: ${err.code ?? err.message}`)));
    req.end(body);
  });
}

function install(): void {
  if (installed) return;
  installed = true;
  const settings = (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings;
  settings.retryMaxAttempts = 0;
  acme.axios.defaults.headers.common['User-Agent'] = 'certctl-acme-issuer (acme-client)';
  acme.axios.defaults.adapter = adapter as never;
  acme.axios.interceptors.response.use((response) => {
    const scope = scopes.getStore();
    const type = String(response.headers?.['content-type'] ?? '');
    if (scope && type.includes('problem+json') && response.data && typeof response.data === 'object') {
      const p = response.data as { type?: unknown; detail?: unknown };
      scope.lastProblem = { type: String(p.type ?? ''), detail: String(p.detail ?? ''), status: response.status };
    }
    return response;
  });
}

const agents = new Map<string, https.Agent>();

/** One keep-alive agent per trust store, so repeated calls reuse connections. */
function agentFor(extraCaPem: string | undefined): https.Agent {
  const key = extraCaPem ?? '';
  let agent = agents.get(key);
  if (!agent) {
    agent = new https.Agent({ keepAlive: true, maxSockets: 4, ...(extraCaPem ? { ca: [...tls.rootCertificates, extraCaPem] } : {}) });
    agents.set(key, agent);
  }
  return agent;
}

/** Runs fn with ACME requests allowed to the directory's host until the call's deadline. */
export function withAcmeScope<T>(directoryUrl: string, extraCaPem: string | undefined, deadline: number, fn: (scope: CallScope) => Promise<T>): Promise<T> {
  install();
  const scope: CallScope = { host: new URL(directoryUrl).hostname, agent: agentFor(extraCaPem), deadline, lastProblem: null };
  return scopes.run(scope, () => fn(scope));
}
