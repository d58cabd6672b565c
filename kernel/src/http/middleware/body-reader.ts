import getRawBody from 'raw-body';
import { appError } from '../../errors.js';
import type { Ctx, RouteDef } from '../route.js';

/** Reads the request body with a hard cap; undefined when the request has none. */
export async function readRequestBody(ctx: Ctx, limit: number): Promise<Buffer | undefined> {
  const hasBody = ctx.request.length > 0 || ctx.get('transfer-encoding') !== '';
  if (!hasBody || ['GET', 'HEAD', 'OPTIONS'].includes(ctx.method)) return undefined;
  if (ctx.request.length > limit) throw appError('BODY_TOO_LARGE', `Request body exceeds ${limit} bytes`);
  try {
    return await getRawBody(ctx.req, { limit, length: ctx.request.length || undefined });
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') throw appError('BODY_TOO_LARGE', `Request body exceeds ${limit} bytes`);
    if (type === 'request.aborted') throw appError('VALIDATION_FAILED', 'Request body was cut off');
    if (type === 'request.size.invalid') throw appError('VALIDATION_FAILED', 'Request body length does not match Content-Length');
    throw err;
  }
}

/**
 * Which requests go to a route with its own `maxBodyBytes`: their body is left
 * for the router to read after the permission check (see RouteDef.maxBodyBytes).
 */
export const deferredBodyMatcher = (routes: readonly RouteDef[]) => routeMatcher(routes.filter((r) => r.maxBodyBytes !== undefined));

/** Whether a request (method, path) is one of these routes, for middleware that runs before the router. */
export function routeMatcher(routes: readonly RouteDef[]): (method: string, path: string) => boolean {
  const patterns = routes.map((r) => ({
    method: r.method,
    // `:name` is one segment; `*name` (a catch-all, as protocol mounts use) is the rest of the path.
    re: new RegExp(`^${r.path.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.startsWith('*') ? '.+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}/?$`),
  }));
  return (method, path) => patterns.some((p) => p.method === method && p.re.test(path));
}

/**
 * Reads the request body into ctx.state.rawBody with a hard size cap, before
 * authentication so an oversized upload costs us at most `limit` bytes.
 * Parsing is the route's business (JSON for the API, DER/CMS for protocols).
 * Bodies of routes with a larger cap of their own are left to the router.
 */
export function bodyReader(limit: number, deferred: (method: string, path: string) => boolean = () => false) {
  return async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    if (!deferred(ctx.method, ctx.path)) ctx.state.rawBody = await readRequestBody(ctx, limit);
    await next();
  };
}
