import type { Logger } from 'pino';
import { AppError, appError } from '../../errors.js';
import type { Ctx } from '../route.js';

/**
 * Turns anything thrown below into the catalogued JSON error shape. Unknown
 * errors become a bare 500 (logged with the request id, never shown to the client).
 * Database errors that are really bad input (constraint violations) map to 4xx.
 */
export function errorMapper(log: Logger) {
  return async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw appError('ROUTE_NOT_FOUND');
      if (ctx.status === 405 && (ctx.body === undefined || typeof ctx.body === 'string')) throw appError('METHOD_NOT_ALLOWED');
    } catch (err) {
      const mapped = toAppError(err);
      if (mapped.status >= 500) log.error({ err, req_id: ctx.state.requestId }, 'request failed');
      ctx.status = mapped.status;
      for (const [k, v] of Object.entries(mapped.headers ?? {})) ctx.set(k, v);
      ctx.body = mapped.toBody();
    }
  };
}

export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const pgCode = (err as { code?: unknown })?.code;
  if (typeof pgCode === 'string') {
    switch (pgCode) {
      case '23505':
        return appError('CONFLICT', 'A resource with the same unique value already exists');
      // restrict_violation: an ON DELETE RESTRICT reference still points here.
      case '23001':
        return appError('IN_USE');
      case '23503': {
        const detail = String((err as { detail?: string }).detail ?? '');
        return /is still referenced/.test(detail) ? appError('IN_USE') : appError('REFERENCE_NOT_FOUND');
      }
      case '23514':
      case '22P02':
      case '22007':
      case '22008':
        return appError('VALIDATION_FAILED', 'A value is out of range or has the wrong form');
    }
  }
  const status = (err as { status?: unknown })?.status;
  if (status === 413 || (err as { type?: string })?.type === 'entity.too.large') return appError('BODY_TOO_LARGE');
  if (typeof status === 'number' && status >= 400 && status < 500) return appError('VALIDATION_FAILED', 'Bad request');
  return appError('INTERNAL');
}
