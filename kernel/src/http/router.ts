import Router from '@koa/router';
import { appError } from '../errors.js';
import { ajv, assertValid } from './validation.js';
import { parseListQuery } from './list-query.js';
import { readRequestBody } from './middleware/body-reader.js';
import type { CompiledRoute, Ctx, RouteDef, RouteInput } from './route.js';

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\b/i;

function parseJsonBody(ctx: Ctx): unknown {
  const raw = ctx.state.rawBody;
  if (!raw || raw.length === 0) return {};
  if (!JSON_TYPE.test(ctx.get('content-type'))) throw appError('UNSUPPORTED_MEDIA_TYPE');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw appError('BAD_JSON');
  }
}

function plainQuery(ctx: Ctx, route: RouteDef): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.query)) {
    if (!route.query || !Object.hasOwn(route.query, k)) throw appError('BAD_QUERY', `Unknown query parameter "${k}"`);
    if (Array.isArray(v)) throw appError('BAD_QUERY', `Query parameter "${k}" given more than once`);
    const allowed = route.query[k].enum;
    if (allowed && !allowed.includes(v ?? '')) throw appError('BAD_QUERY', `${k} must be one of ${allowed.join(', ')}`);
    out[k] = v ?? '';
  }
  return out;
}

/**
 * Builds the router from the route table. Access is checked before the body is
 * parsed, and the body is validated before the handler runs, so a handler only
 * ever sees an authorised caller with a schema-valid body.
 */
export function buildRouter(routes: RouteDef[]): { router: Router<Ctx['state']>; compiled: CompiledRoute[] } {
  // Case-sensitive, like the body reader's matcher for routes that read their own body:
  // the two must agree on which route a path is.
  const router = new Router<Ctx['state']>({ sensitive: true });
  const compiled: CompiledRoute[] = [];
  const seen = new Set<string>();
  for (const route of routes) {
    const key = `${route.method} ${route.path}`;
    if (seen.has(key)) throw new Error(`Duplicate route ${key}`);
    seen.add(key);
    if (!route.access) throw new Error(`Route ${key} declares no permission`);
    const c: CompiledRoute = { ...route, validateBody: route.body ? ajv.compile(route.body) : undefined };
    compiled.push(c);
    router.register(route.path, [route.method], async (ctx: Ctx) => {
      const principal = ctx.state.principal;
      if (route.access !== 'public') {
        if (!principal) throw appError('UNAUTHENTICATED');
        if (route.access !== 'authenticated' && !principal.hasAny(route.access)) {
          throw appError('FORBIDDEN', `This action needs the ${route.access} permission`, { details: [{ path: 'permission', message: route.access }] });
        }
      }
      const input: RouteInput = {
        params: (ctx as unknown as { params: Record<string, string> }).params ?? {},
        body: undefined,
        principal: principal!,
        query: {},
      };
      // Uploads with their own cap are read only now, for an authorised caller.
      if (route.maxBodyBytes !== undefined) ctx.state.rawBody = await readRequestBody(ctx, route.maxBodyBytes);
      if (route.list) input.list = parseListQuery(route.list, ctx.query);
      else if (!route.rawQuery) input.query = plainQuery(ctx, route);
      if (c.validateBody) input.body = assertValid(c.validateBody, parseJsonBody(ctx));
      const result = await route.handler(ctx, input);
      if (result === undefined) {
        if (ctx.body === undefined) ctx.status = 204;
      } else {
        ctx.status = route.response?.status ?? 200;
        ctx.body = result;
      }
    });
  }
  return { router, compiled };
}
