import { AsyncLocalStorage } from 'node:async_hooks';
import https from 'node:https';
import tls from 'node:tls';
import acme from 'acme-client';

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

/**
 * acme-client talks HTTP through one module-wide axios instance. This first-party
 * plugin runs as trusted code in a worker thread and lets acme-client open its own
 * HTTPS connections (the broker's http.fetch cannot carry its retry and nonce
 * handling), but only inside a call scope and only to the configured directory's
 * host: the interceptor refuses anything else, turns off redirects and proxies,
 * pins the trust store, and caps each request by the call's deadline. The library's
 * own sleeping retries are turned off: the kernel retries whole calls instead.
 */
function install(): void {
  if (installed) return;
  installed = true;
  const settings = (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings;
  settings.retryMaxAttempts = 0;
  acme.axios.defaults.headers.common['User-Agent'] = 'certctl-acme-issuer (acme-client)';
  acme.axios.interceptors.request.use((config) => {
    const scope = scopes.getStore();
    if (!scope) throw new Error('acme: HTTP request outside a plugin call');
    const url = new URL(config.url ?? '', config.baseURL);
    if (url.protocol !== 'https:') throw new Error(`acme: refusing ${url.protocol} request to ${url.host}: ACME runs over HTTPS only`);
    if (url.hostname !== scope.host) throw new Error(`acme: refusing request to ${url.host}: only the directory's host ${scope.host} may be called`);
    const left = scope.deadline - Date.now();
    if (left <= 0) throw new Error('acme: the call has no time left for another request');
    config.httpsAgent = scope.agent;
    config.maxRedirects = 0;
    config.proxy = false;
    config.timeout = Math.min(REQUEST_TIMEOUT_MS, left);
    config.maxContentLength = 1024 * 1024;
    return config;
  });
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
