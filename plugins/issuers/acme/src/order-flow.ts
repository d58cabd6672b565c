import crypto from 'node:crypto';
import net from 'node:net';
import acme from 'acme-client';
import type { IssueResult, Json, PluginContext } from '@certctl/sdk';
import { presentChallenges, withdrawChallenges, type Published } from './challenges.js';
import { kvKeys, type AcmeConfig } from './config.js';
import { ariCertId } from './der.js';

/** An order this plugin placed and has not finished, as kept in kv between calls. */
export interface OrderState {
  orderUrl: string;
  certificateId: string;
  csrPem: string;
  published: Published;
}

/** Orders still open after this long are abandoned (the CA expires them too). */
const ORDER_TTL_SECONDS = 7 * 24 * 3600;
/** How long one call waits for the CA before answering `pending`. */
const MAX_WAIT_MS = 25_000;

const instanceOf = (ctx: PluginContext) => ctx.instanceId ?? 'default';
const orderIdOf = (orderUrl: string) => crypto.createHash('sha256').update(orderUrl).digest('base64url').slice(0, 22);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The names to order: exactly the CSR's (the CA refuses a CSR whose names differ from the order's). */
export function identifiersOf(csrPem: string): { type: 'dns' | 'ip'; value: string }[] {
  const { commonName, altNames } = acme.crypto.readCsrDomains(csrPem);
  const names = [...new Set([commonName, ...altNames].filter((n): n is string => typeof n === 'string' && n.length > 0))];
  return names.map((value) => ({ type: net.isIP(value) ? 'ip' : 'dns', value }));
}

/** Splits the CA's PEM bundle into the leaf and the rest of the chain. */
function split(bundle: string): { certificatePem: string; chainPem: string[] } {
  const [certificatePem, ...chainPem] = acme.crypto.splitPemChain(bundle).map((p) => (p.endsWith('\n') ? p : `${p}\n`));
  if (!certificatePem) throw new Error('the CA returned no certificate');
  return { certificatePem, chainPem };
}

async function failedAuthorizations(client: acme.Client, order: acme.Order): Promise<string> {
  const authzs = await client.getAuthorizations(order).catch(() => []);
  const bad = authzs.filter((a) => a.status !== 'valid').map((a) => {
    const err = a.challenges.find((c) => (c as { error?: unknown }).error) as { type: string; error?: { detail?: string; type?: string } } | undefined;
    return `${a.identifier.value}: ${a.status}${err?.error ? ` (${err.type}: ${err.error.detail ?? err.error.type})` : ''}`;
  });
  return bad.length ? bad.join('; ') : 'the CA marked the order invalid';
}

/**
 * Moves an order forward until it has a certificate, fails, or this call's time is
 * up: finalize once ready (with the CSR the kernel passed), download once valid.
 * Time up answers `pending` with the order kept in kv for checkOrder.
 */
export async function advanceOrder(ctx: PluginContext, config: AcmeConfig, client: acme.Client, state: OrderState): Promise<IssueResult> {
  const until = Math.min(ctx.clock.now() + MAX_WAIT_MS, ctx.clock.deadline() - 3000);
  const kvKey = kvKeys.order(instanceOf(ctx), orderIdOf(state.orderUrl));
  let pause = 250;
  for (;;) {
    let order = await client.getOrder({ url: state.orderUrl } as acme.Order);
    if (order.status === 'ready') order = await client.finalizeOrder(order, state.csrPem);
    if (order.status === 'valid' && order.certificate) {
      const bundle = await client.getCertificate(order, config.preferred_chain);
      await withdrawChallenges(ctx, config, state.published);
      await ctx.kv.delete(kvKey);
      const issued = split(bundle);
      await rememberIssued(ctx, state.certificateId, issued.certificatePem);
      ctx.log.info('certificate issued', { certificate_id: state.certificateId, order: state.orderUrl });
      return { status: 'issued', ...issued };
    }
    if (order.status === 'invalid') {
      const reason = await failedAuthorizations(client, order);
      await withdrawChallenges(ctx, config, state.published);
      await ctx.kv.delete(kvKey);
      ctx.log.warn('ACME order invalid', { certificate_id: state.certificateId, reason });
      return { status: 'failed', reason: `ACME order failed: ${reason}`, retryable: true };
    }
    if (ctx.clock.now() + pause >= until) {
      await ctx.kv.set(kvKey, state as unknown as Json, { ttlSeconds: ORDER_TTL_SECONDS });
      return { status: 'pending', orderId: orderIdOf(state.orderUrl), retryAfterSeconds: 5 };
    }
    await sleep(pause);
    pause = Math.min(pause * 2, 2000);
  }
}

/** The order kept by an earlier `pending`, or null when it is unknown or expired. */
export async function storedOrder(ctx: PluginContext, orderId: string): Promise<OrderState | null> {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(orderId)) return null;
  const state = await ctx.kv.get(kvKeys.order(instanceOf(ctx), orderId));
  return state && typeof state === 'object' ? (state as unknown as OrderState) : null;
}

/** New order for the CSR's names, challenges put up, then advanced as far as time allows. */
export async function placeOrder(ctx: PluginContext, config: AcmeConfig, client: acme.Client, request: { certificateId: string; csrPem: string }, replaces: string | null): Promise<IssueResult> {
  const order = await client.createOrder({
    identifiers: identifiersOf(request.csrPem),
    ...(config.profile ? { profile: config.profile } : {}),
    ...(replaces ? { replaces } : {}),
  } as Parameters<acme.Client['createOrder']>[0]);
  const published = await presentChallenges(ctx, config, client, await client.getAuthorizations(order));
  return advanceOrder(ctx, config, client, { orderUrl: order.url, certificateId: request.certificateId, csrPem: request.csrPem, published });
}

/** Remembers the ARI id of the latest certificate per certctl certificate, for `replaces` on renewal. */
async function rememberIssued(ctx: PluginContext, certificateId: string, certificatePem: string): Promise<void> {
  try {
    const serial = new crypto.X509Certificate(certificatePem).serialNumber.toLowerCase();
    await ctx.kv.set(kvKeys.issued(instanceOf(ctx), certificateId), { serial, ari_id: ariCertId(certificatePem) }, { ttlSeconds: 400 * 86400 });
  } catch (err) {
    ctx.log.warn('could not record the certificate for ARI', { certificate_id: certificateId, reason: (err as Error).message });
  }
}

/** The ARI id of the certificate a renewal replaces, when this plugin issued it. */
export async function replacedCertId(ctx: PluginContext, certificateId: string, previousSerial: string | undefined): Promise<string | null> {
  const kept = (await ctx.kv.get(kvKeys.issued(instanceOf(ctx), certificateId))) as { serial?: string; ari_id?: string } | undefined;
  if (!kept?.ari_id) return null;
  const norm = (s: string) => s.replace(/[^0-9a-f]/gi, '').replace(/^0+/, '').toLowerCase();
  if (previousSerial && kept.serial && norm(previousSerial) !== norm(kept.serial)) return null;
  return kept.ari_id;
}
