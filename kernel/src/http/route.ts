import type Koa from 'koa';
import type { ValidateFunction } from 'ajv';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';
import type { ListSpec } from './list-query.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type JsonSchema = Record<string, unknown>;

/** `public`: no key needed; `authenticated`: any valid key; else one catalogued permission. */
export type RouteAccess = Permission | 'public' | 'authenticated';

export interface AppState {
  requestId: string;
  principal?: Principal;
  rawBody?: Buffer;
  startedAt: bigint;
  /** Set by handlers that want the API audit row to name the resource. */
  auditResource?: { type: string; id: string };
}

export type Ctx = Koa.ParameterizedContext<AppState>;

export interface RouteDef {
  method: HttpMethod;
  /** @koa/router syntax: /api/v1/certificates/:id */
  path: string;
  access: RouteAccess;
  summary: string;
  tag: string;
  /** JSON request body schema; ajv-validated before the handler runs. */
  body?: JsonSchema;
  /** A list route: pagination, fields, sort and filters parsed and validated for it. */
  list?: ListSpec;
  /** Extra query parameters a non-list route accepts (strings). */
  query?: Record<string, { description: string; enum?: string[] }>;
  /** Response description for OpenAPI: a schema, or a content type for non-JSON. */
  response?: { status?: number; schema?: JsonSchema; contentType?: string; description?: string };
  /** Raw bodies (non-JSON protocols, uploads) are handed over unparsed. */
  rawBody?: boolean;
  /** Media types a raw-body route accepts (documented in OpenAPI). */
  rawBodyTypes?: string[];
  /**
   * A body cap above CERTCTL_MAX_BODY_SIZE, for uploads (plugin packages). Such a
   * body is not read up front with the others but after authentication and the
   * permission check, so an anonymous caller can still make the kernel buffer at
   * most the global cap.
   */
  maxBodyBytes?: number;
  /**
   * The route reads the Authorization header itself (agent registration's bootstrap
   * token is not an API key): authentication leaves such requests anonymous instead
   * of refusing the header. Only meaningful on a `public` route.
   */
  ownAuthorization?: boolean;
  /** The handler reads ctx.query itself (protocol mounts): any query parameters pass. */
  rawQuery?: boolean;
  handler: (ctx: Ctx, input: RouteInput) => Promise<unknown> | unknown;
}

export interface RouteInput {
  params: Record<string, string>;
  body: any;
  principal: Principal;
  list?: import('./list-query.js').ListQuery;
  query: Record<string, string>;
}

/** Compiled form kept by the router: validators are built once at registration. */
export interface CompiledRoute extends RouteDef {
  validateBody?: ValidateFunction;
}

/** Names the resource a request acted on, for its API audit row. */
export const markAuditResource = (ctx: Ctx, type: string, id: string): void => {
  ctx.state.auditResource = { type, id };
};
