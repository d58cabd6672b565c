import { PROTOCOL_MOUNT_ROOTS } from '@certctl/sdk';
import type { HttpMethod, RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { instanceRoutes } from '../plugins/instances/instance-routes.js';
import { dispatchProtocol } from './protocol-dispatch.js';

const PROTOCOL_METHODS: HttpMethod[] = ['GET', 'POST'];

/**
 * The catch-all routes of every protocol mount root (GET also answers HEAD). They
 * are public: the protocol authenticates its own clients (EST basic or client
 * certificate, ACME JWS, SCEP challenge), so the Authorization header is theirs
 * (ownAuthorization) and any query passes. Which plugin answers is decided per
 * request from the catalog (protocol-dispatch.ts), so installed protocol plugins
 * are served without a restart.
 */
export function protocolMountRoutes(k: KernelServices): RouteDef[] {
  return PROTOCOL_MOUNT_ROOTS.flatMap((root) => [root, `${root}/*rest`].flatMap((path) => PROTOCOL_METHODS.map((method): RouteDef => ({
    method,
    path,
    access: 'public',
    ownAuthorization: true,
    rawQuery: true,
    rawBody: true,
    tag: 'protocols',
    summary: `Enrolment protocol traffic under ${root}, answered by the protocol plugin serving that mount`,
    response: { description: 'Whatever the protocol answers; kernel-side failures are application/problem+json (404 no endpoint, 413 body too large, 503 plugin failure)' },
    handler: (ctx) => dispatchProtocol(k, ctx),
  }))));
}

/** Protocol endpoints: the one configured instance of each protocol plugin (docs/protocols.md). */
export function protocolEndpointRoutes(k: KernelServices): RouteDef[] {
  return instanceRoutes(k, {
    kind: 'protocol',
    idKind: 'protocolEndpoint',
    table: 'protocol_endpoints',
    basePath: '/api/v1/protocol-endpoints',
    tag: 'protocols',
    noun: 'protocol_endpoint',
    // Opening an enrolment door is plugin administration, not day-to-day operation.
    permissions: { read: 'plugin.read', create: 'plugin.manage', update: 'plugin.manage', delete: 'plugin.manage' },
  });
}

export function protocolRoutes(k: KernelServices): RouteDef[] {
  return [...protocolEndpointRoutes(k), ...protocolMountRoutes(k)];
}
