import crypto from 'node:crypto';
import type { Ctx } from '../route.js';

const INCOMING_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Adopts a sane incoming X-Request-ID (so traces join up across proxies) or makes one. */
export async function requestId(ctx: Ctx, next: () => Promise<void>): Promise<void> {
  const incoming = ctx.get('x-request-id');
  ctx.state.requestId = INCOMING_ID.test(incoming) ? incoming : crypto.randomUUID();
  ctx.state.startedAt = process.hrtime.bigint();
  ctx.set('X-Request-ID', ctx.state.requestId);
  await next();
}
