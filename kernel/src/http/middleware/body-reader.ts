import getRawBody from 'raw-body';
import { appError } from '../../errors.js';
import type { Ctx } from '../route.js';

/**
 * Reads the request body into ctx.state.rawBody with a hard size cap, before
 * authentication so an oversized upload costs us at most `limit` bytes.
 * Parsing is the route's business (JSON for the API, DER/CMS for protocols).
 */
export function bodyReader(limit: number) {
  return async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    const hasBody = ctx.request.length > 0 || ctx.get('transfer-encoding') !== '';
    if (hasBody && !['GET', 'HEAD', 'OPTIONS'].includes(ctx.method)) {
      if (ctx.request.length > limit) throw appError('BODY_TOO_LARGE', `Request body exceeds ${limit} bytes`);
      try {
        ctx.state.rawBody = await getRawBody(ctx.req, { limit, length: ctx.request.length || undefined });
      } catch (err) {
        const type = (err as { type?: string }).type;
        if (type === 'entity.too.large') throw appError('BODY_TOO_LARGE', `Request body exceeds ${limit} bytes`);
        if (type === 'request.aborted') throw appError('VALIDATION_FAILED', 'Request body was cut off');
        if (type === 'request.size.invalid') throw appError('VALIDATION_FAILED', 'Request body length does not match Content-Length');
        throw err;
      }
    }
    await next();
  };
}
