import type { TLSSocket } from 'node:tls';
import type { Json, ProtocolHttpRequest, ProtocolHttpResponse } from '@certctl/sdk';
import { derToPem } from '../crypto/der.js';
import type { Ctx } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { PluginCallError } from '../plugins/host/contracts.js';
import { INSTANCE_COLUMNS, type InstanceRow } from '../plugins/host/instance-loader.js';
import { DEFAULT_PROTOCOL_MAX_BODY, DEFAULT_PROTOCOL_TIMEOUT_MS, matchMount, type MountMatch } from './mounts.js';

/*
 * Forwards a request under a protocol mount to its plugin's `handle` and writes
 * the plugin's answer. The kernel's own answers on these paths (no endpoint
 * configured, body too large, plugin failure) are RFC 9457 problem documents,
 * never a stack trace and never a 500: a failing plugin is a 503.
 */

/** Headers a plugin may not set: framing is the server's, and cookies would reach the dashboard's origin. */
const RESERVED_RESPONSE_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'set-cookie', 'trailer']);
/** Request headers a plugin never sees (the dashboard's session travels in cookies). */
const HIDDEN_REQUEST_HEADERS = new Set(['cookie']);

export function problem(ctx: Ctx, status: number, title: string, detail: string, headers: Record<string, string> = {}): void {
  ctx.status = status;
  for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
  ctx.set('Content-Type', 'application/problem+json');
  ctx.body = Buffer.from(JSON.stringify({ type: 'about:blank', title, status, detail }));
}

function clientCertificatePem(ctx: Ctx): string | null {
  const socket = ctx.req.socket as Partial<TLSSocket>;
  const raw = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false)?.raw : undefined;
  if (!raw?.length) return null;
  return derToPem(raw, 'CERTIFICATE');
}

/**
 * The kernel's public base URL for absolute links in protocol answers. With
 * CERTCTL_SERVER_PORT=0 (an ephemeral port, as in tests) the configured default
 * cannot be right, so the request's own Host is used.
 */
function baseUrl(k: KernelServices, ctx: Ctx): string {
  const configured = k.config.publicBaseUrl;
  if (!/:0$/.test(configured)) return configured;
  return `https://${ctx.host}`;
}

export function buildProtocolRequest(k: KernelServices, ctx: Ctx, match: MountMatch, body: Buffer): ProtocolHttpRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(ctx.req.headers)) {
    if (value === undefined || HIDDEN_REQUEST_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(ctx.querystring)) query[name] = value;
  return {
    method: ctx.method,
    mount: match.mount,
    path: match.rest,
    query,
    headers,
    body: body.toString('base64'),
    remoteAddress: ctx.req.socket.remoteAddress ?? '',
    clientCertificatePem: clientCertificatePem(ctx),
    baseUrl: baseUrl(k, ctx),
  };
}

function writeResponse(ctx: Ctx, res: ProtocolHttpResponse): void {
  ctx.status = res.status;
  for (const [name, value] of Object.entries(res.headers ?? {})) {
    if (!RESERVED_RESPONSE_HEADERS.has(name.toLowerCase())) ctx.set(name, value);
  }
  // Always a Buffer (even empty): a null body would turn the plugin's status into 204.
  ctx.body = Buffer.from(res.body ?? '', res.bodyEncoding === 'base64' ? 'base64' : 'utf8');
}

/** The route handler of every protocol mount. */
export async function dispatchProtocol(k: KernelServices, ctx: Ctx): Promise<void> {
  const match = matchMount(k.plugins.list(), ctx.path);
  if (!match) return problem(ctx, 404, 'Not Found', 'no protocol is served at this path');
  let endpoint: InstanceRow | undefined;
  try {
    // The whole row, handed to the plugin host: it is then not read a second time for the call's config.
    endpoint = (await k.db.knex('protocol_endpoints').where({ type: match.plugin.id }).first(...INSTANCE_COLUMNS)) as typeof endpoint;
  } catch (err) {
    // The database is busy or away (pool exhausted, a timeout): a protocol client retries a 503, never sees a 500.
    k.log.warn({ plugin_id: match.plugin.id, err: (err as Error)?.message ?? String(err), request_id: ctx.state.requestId }, 'protocol endpoint lookup failed');
    return problem(ctx, 503, 'Service Unavailable', `the ${match.plugin.id} protocol cannot be looked up right now; try again later`, { 'Retry-After': '5' });
  }
  if (!endpoint?.enabled) return problem(ctx, 404, 'Not Found', `the ${match.plugin.id} protocol is not enabled on this server`);

  const spec = match.plugin.manifest.protocol!;
  const body = ctx.state.rawBody ?? Buffer.alloc(0);
  const limit = spec.maxBodyBytes ?? DEFAULT_PROTOCOL_MAX_BODY;
  if (body.length > limit) return problem(ctx, 413, 'Payload Too Large', `request bodies here are limited to ${limit} bytes`);

  let res: ProtocolHttpResponse;
  try {
    const request = buildProtocolRequest(k, ctx, match, body);
    res = (await k.pluginHost.call(match.plugin.id, endpoint.id, 'handle', request as unknown as Json, { timeoutMs: spec.timeoutMs ?? DEFAULT_PROTOCOL_TIMEOUT_MS, instanceRow: endpoint })) as unknown as ProtocolHttpResponse;
  } catch (err) {
    const code = err instanceof PluginCallError ? err.code : 'error';
    k.log.warn({ plugin_id: match.plugin.id, endpoint_id: endpoint.id, code, err: (err as Error)?.message ?? String(err), request_id: ctx.state.requestId }, 'protocol request failed in its plugin');
    return problem(ctx, 503, 'Service Unavailable', `the ${match.plugin.id} protocol could not answer (${code}); try again later`, { 'Retry-After': '30' });
  }
  writeResponse(ctx, res);
}
