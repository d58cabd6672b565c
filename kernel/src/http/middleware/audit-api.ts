import type { AuditLog } from '../../audit/audit-log.js';
import { sha256Hex } from '../../audit/audit-log.js';
import type { Ctx } from '../route.js';

/**
 * Records every API call in the audit trail after the response is decided:
 * actor, method, path, status, latency and the SHA-256 of the body (never the body).
 * Rate-limited calls are not recorded, so a flood cannot flood the trail too.
 */
export function auditApiCalls(audit: AuditLog, excluded: string[]) {
  const skip = new Set(excluded);
  return async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    try {
      await next();
    } finally {
      if (!skip.has(ctx.path) && ctx.status !== 429 && ctx.method !== 'OPTIONS' && !ctx.path.startsWith('/assets/')) {
        const p = ctx.state.principal;
        audit.enqueue({
          category: 'api',
          actor: p?.actor ?? 'anonymous',
          actor_type: p?.actorType ?? 'anonymous',
          action: 'api_call',
          resource_type: ctx.state.auditResource?.type ?? '',
          resource_id: ctx.state.auditResource?.id ?? '',
          method: ctx.method,
          path: ctx.path,
          status_code: ctx.status,
          latency_ms: Math.round(Number(process.hrtime.bigint() - ctx.state.startedAt) / 1e6),
          body_sha256: ctx.state.rawBody?.length ? sha256Hex(ctx.state.rawBody) : null,
          request_id: ctx.state.requestId,
        });
      }
    }
  };
}
