import cors from '@koa/cors';
import type { Ctx } from '../route.js';

/**
 * Deny-by-default CORS: with no CERTCTL_CORS_ORIGINS no Access-Control-Allow-Origin
 * is ever sent, so browsers refuse cross-origin reads. `*` allows any origin but
 * never with credentials.
 */
export function corsPolicy(origins: string[]) {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return cors({
    origin: (ctx) => {
      const origin = ctx.get('Origin');
      if (any) return '*';
      return allowed.has(origin) ? origin : '';
    },
    allowMethods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-Request-ID'],
    exposeHeaders: ['X-Request-ID', 'Retry-After', 'ETag'],
    maxAge: 600,
    credentials: false,
    keepHeadersOnError: true,
  }) as unknown as (ctx: Ctx, next: () => Promise<void>) => Promise<void>;
}
