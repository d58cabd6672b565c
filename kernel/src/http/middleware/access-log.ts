import type { Logger } from 'pino';
import type { Ctx } from '../route.js';

/** One structured line per request, after the response is decided. */
export function accessLog(log: Logger) {
  return async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - ctx.state.startedAt) / 1e6;
      const line = {
        req_id: ctx.state.requestId,
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        ms: Math.round(ms * 10) / 10,
        actor: ctx.state.principal?.actor ?? 'anonymous',
      };
      if (ctx.status >= 500) log.error(line, 'request');
      else if (ctx.path === '/health' || ctx.path === '/ready') log.debug(line, 'request');
      else log.info(line, 'request');
    }
  };
}
