import crypto from 'node:crypto';
import type { PluginContext } from '@certctl/sdk';

/*
 * Stateless replay nonces (RFC 8555 6.5): random(16) || expiry(4, seconds, big
 * endian) || HMAC-SHA256(key, random || expiry) cut to 16 bytes, base64url (48
 * characters). Handing one out stores nothing, so a HEAD /new-nonce flood cannot
 * fill the kv. The key comes from ctx.secrets.deriveKey (derived by the kernel
 * from its master key, never stored), so every kernel serving the endpoint
 * accepts every other's nonces. Only a used nonce costs a row: one atomic
 * increment of nonce-used:<nonce>, expiring with the nonce, so of requests racing
 * with one nonce (on any kernel) exactly one gets the count 1.
 */

const NONCE_TTL_SECONDS = 3600;
const RANDOM = 16;
const MAC = 16;
const LENGTH = RANDOM + 4 + MAC;
const TEXT = /^[A-Za-z0-9_-]{48}$/;

/** The instance's nonce key, derived once per worker (the host answers the same on every call). */
const keys = new Map<string, Promise<Buffer>>();

function nonceKey(ctx: PluginContext): Promise<Buffer> {
  const id = `${ctx.pluginId}\0${ctx.instanceId ?? ''}`;
  let key = keys.get(id);
  if (!key) {
    key = ctx.secrets.deriveKey('acme-nonce').then((k) => Buffer.from(k, 'base64url'));
    key.catch(() => keys.delete(id)); // a failed derivation is retried on the next request
    keys.set(id, key);
  }
  return key;
}

const mac = (key: Buffer, body: Buffer) => crypto.createHmac('sha256', key).update(body).digest().subarray(0, MAC);

export async function issueNonce(ctx: PluginContext): Promise<string> {
  const body = Buffer.alloc(RANDOM + 4);
  crypto.randomFillSync(body, 0, RANDOM);
  body.writeUInt32BE(Math.floor(ctx.clock.now() / 1000) + NONCE_TTL_SECONDS, RANDOM);
  return Buffer.concat([body, mac(await nonceKey(ctx), body)]).toString('base64url');
}

/** True once per issued, unexpired nonce with a valid MAC; false for a forged, expired or reused one. */
export async function consumeNonce(ctx: PluginContext, nonce: string): Promise<boolean> {
  if (!TEXT.test(nonce)) return false;
  const raw = Buffer.from(nonce, 'base64url');
  if (raw.length !== LENGTH) return false;
  const body = raw.subarray(0, RANDOM + 4);
  if (!crypto.timingSafeEqual(raw.subarray(RANDOM + 4), mac(await nonceKey(ctx), body))) return false;
  const left = body.readUInt32BE(RANDOM) - Math.floor(ctx.clock.now() / 1000);
  if (left <= 0) return false;
  // The row only has to outlive the nonce: after its expiry the MAC check refuses it anyway.
  return (await ctx.kv.increment(`nonce-used:${nonce}`, { ttlSeconds: left + 1 })) === 1;
}
