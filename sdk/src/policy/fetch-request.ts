import type { HttpRequest } from '../contract.js';
import { IP_LITERAL_ONLY_CLASSES, normalizeAddress, ORDINARY_CLASSES, type AddressClass } from './address-policy.js';
import type { HostRule } from './host-allowlist.js';

/** A plugin's http.fetch request refused by policy; the host maps it to its own error type. */
export class FetchPolicyRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FetchPolicyRefusal';
  }
}

export const FETCH_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Set by the host from the URL and body, or meaningless across the connection it opens. */
const DROPPED_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection', 'expect']);

export interface FetchRequestParts {
  url: URL;
  method: NonNullable<HttpRequest['method']>;
  headers: Record<string, string>;
  body: Buffer | null;
  bodyEncoding: 'utf8' | 'base64';
  timeoutMs: number | null;
}

/** Checks and normalises a plugin's request object; throws FetchPolicyRefusal. */
export function parseFetchRequest(raw: unknown, maxRequestBytes: number): FetchRequestParts {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new FetchPolicyRefusal('http.fetch expects a request object');
  const r = raw as HttpRequest;
  if (typeof r.url !== 'string' || r.url.length > 8192) throw new FetchPolicyRefusal('http.fetch request.url must be a string of at most 8192 characters');
  let url: URL;
  try {
    url = new URL(r.url);
  } catch {
    throw new FetchPolicyRefusal(`http.fetch request.url is not a URL: ${r.url.slice(0, 200)}`);
  }
  const method = r.method === undefined ? 'GET' : r.method;
  if (typeof method !== 'string' || !FETCH_METHODS.has(method)) throw new FetchPolicyRefusal(`http.fetch method must be one of ${[...FETCH_METHODS].join(', ')}`);
  const headers: Record<string, string> = {};
  if (r.headers !== undefined) {
    if (!r.headers || typeof r.headers !== 'object' || Array.isArray(r.headers)) throw new FetchPolicyRefusal('http.fetch headers must be an object of strings');
    for (const [name, value] of Object.entries(r.headers)) {
      if (!HEADER_NAME.test(name) || typeof value !== 'string' || /[\r\n\0]/.test(value)) throw new FetchPolicyRefusal(`http.fetch header ${JSON.stringify(name).slice(0, 100)} is not a valid header`);
      if (!DROPPED_HEADERS.has(name.toLowerCase())) headers[name] = value;
    }
  }
  let body: Buffer | null = null;
  const bodyEncoding = r.bodyEncoding ?? 'utf8';
  if (r.body !== undefined && r.body !== null) {
    if (typeof r.body !== 'string') throw new FetchPolicyRefusal('http.fetch body must be a string');
    if (bodyEncoding !== 'utf8' && bodyEncoding !== 'base64') throw new FetchPolicyRefusal('http.fetch bodyEncoding must be utf8 or base64');
    body = Buffer.from(r.body, bodyEncoding);
    if (body.length > maxRequestBytes) throw new FetchPolicyRefusal(`http.fetch request body is ${body.length} bytes, over the ${maxRequestBytes}-byte limit`);
  }
  const timeoutMs = r.timeoutMs === undefined ? null : Number(r.timeoutMs);
  if (timeoutMs !== null && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new FetchPolicyRefusal('http.fetch timeoutMs must be a positive number');
  return { url, method: method as FetchRequestParts['method'], headers, body, bodyEncoding, timeoutMs };
}

/**
 * Whether an address of this class may be reached through this rule: public and
 * private ones always; loopback, link-local and the like only through an exact
 * (non-wildcard) host; metadata and unspecified only through that exact IP.
 */
export function addressAllowed(cls: AddressClass, address: string, rule: HostRule): boolean {
  if (ORDINARY_CLASSES.has(cls)) return true;
  if (IP_LITERAL_ONLY_CLASSES.has(cls)) return rule.ip && normalizeAddress(rule.host) === address;
  return !rule.wildcard;
}
