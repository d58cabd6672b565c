import Koa from 'koa';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.js';
import type { KernelConfig } from '../config.js';
import type { Database } from '../db/database.js';
import { accessLog } from './middleware/access-log.js';
import { auditApiCalls } from './middleware/audit-api.js';
import { authenticate } from './middleware/authenticate.js';
import { bodyReader, deferredBodyMatcher, routeMatcher } from './middleware/body-reader.js';
import { corsPolicy } from './middleware/cors.js';
import { errorMapper } from './middleware/error-mapper.js';
import { RecentKeys, rateLimiter } from './middleware/rate-limit.js';
import { requestId } from './middleware/request-id.js';
import { buildRouter } from './router.js';
import { staticWeb } from './static-web.js';
import type { AppState, CompiledRoute, RouteDef } from './route.js';

const PROBES = new Set(['/health', '/ready']);

/**
 * The Koa application. Middleware order matters and is deliberate:
 * request id -> access log -> audit -> error mapping -> body limit -> CORS ->
 * rate limit -> authentication -> route (permission check, validation, handler).
 * Audit and logging sit outside error mapping so they see the final status.
 */
export function buildApp(deps: { config: KernelConfig; log: Logger; db: Database; audit: AuditLog; routes: RouteDef[]; webDir?: string }) {
  const { config, log, db, audit } = deps;
  const app = new Koa<AppState>({ proxy: false });
  app.silent = true;
  const recentKeys = new RecentKeys();
  const limiter = config.rateLimit.enabled ? rateLimiter({ rps: config.rateLimit.rps, burst: config.rateLimit.burst, exempt: (p) => PROBES.has(p), recentKeys }) : null;
  const { router, compiled } = buildRouter(deps.routes);

  app.use(requestId);
  app.use(accessLog(log));
  // The dashboard (web/dist) and its SPA fallback; API and protocol paths pass through.
  app.use(staticWeb(deps.webDir));
  app.use(auditApiCalls(audit, config.auditExcludePaths));
  app.use(errorMapper(log));
  app.use(async (ctx, next) => {
    // Baseline response hardening for an API that only ever serves JSON or binary PKI objects.
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Strict-Transport-Security', 'max-age=31536000');
    ctx.set('Cache-Control', 'no-store');
    await next();
  });
  app.use(bodyReader(config.maxBodySize, deferredBodyMatcher(deps.routes)));
  app.use(corsPolicy(config.corsOrigins));
  if (limiter) app.use(limiter);
  app.use(authenticate(db.knex, config.authType, recentKeys, routeMatcher(deps.routes.filter((r) => r.access === 'public' && r.ownAuthorization))));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return { app, compiled: compiled as CompiledRoute[], stop: () => limiter?.stop() };
}
