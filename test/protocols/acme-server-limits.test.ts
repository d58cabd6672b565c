import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { Knex } from 'knex';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KV_MAX_KEYS_CEILING } from '@certctl/sdk/policy';
import { AuditLog } from '../../kernel/src/audit/audit-log.js';
import { KernelCapabilityBroker } from '../../kernel/src/plugins/broker/capability-broker.js';
import { deriveInstanceKey } from '../../kernel/src/plugins/broker/instance-secrets.js';
import { PluginKv } from '../../kernel/src/plugins/broker/plugin-kv.js';
import { capabilityItems, fromItems } from '../../kernel/src/plugins/install/capabilities.js';
import { checkManifest } from '../../kernel/src/plugins/manifest-check.js';
import { sweepExpiredKv } from '../../kernel/src/plugins/broker/plugin-kv-sweep.js';
import { PluginCallError, type BrokerCallContext, type BrokerOp, type GrantedCapabilities } from '../../kernel/src/plugins/host/contracts.js';
import { createIsolateRunner } from '../../kernel/src/plugins/runners/isolate/index.js';
import { ConfigCipher } from '../../kernel/src/secrets/config-cipher.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import type { TestKernel } from '../support/test-kernel.js';
import { slidingWindow } from '../../plugins/protocols/acme-server/src/rate-limit.js';
import { RawAcme, startAcmeServer } from './acme-client.js';

const ORDERS_PER_HOUR = 3;
const ACCOUNTS_PER_IP = 4;
const HOUR_MS = 3_600_000;

/*
 * The sliding-window estimate (rate-limit.ts), with the clock given: no window's
 * end to cross, since the previous window's requests fade out over the current one
 * instead of being forgotten at once.
 */
describe('ACME server: sliding-window rate-limit estimate', () => {
  const start = 1000 * HOUR_MS; // a window's start
  const at = (fraction: number) => start + Math.round(fraction * HOUR_MS);

  it('weights the previous window by the part of it still within the hour', () => {
    expect(slidingWindow(at(0), { current: 1, previous: 10 }, 20)).toEqual({ allowed: true, estimate: 11 });
    expect(slidingWindow(at(0.25), { current: 5, previous: 8 }, 11)).toEqual({ allowed: true, estimate: 11 });
    expect(slidingWindow(at(0.75), { current: 5, previous: 8 }, 6)).toEqual({ allowed: false, estimate: 7, retryAfterSeconds: 3600 * 0.25 });
    expect(slidingWindow(at(0.5), { current: 3, previous: 0 }, 3)).toEqual({ allowed: true, estimate: 3 });
  });

  it('refuses a burst across a window boundary that fixed windows would let through twice', () => {
    // Ten requests at the end of one window, then ten more just after it: the estimate still sees the first ten.
    const limit = 10;
    expect(slidingWindow(at(0.999), { current: 10, previous: 0 }, limit).allowed).toBe(true);
    let admitted = 0;
    for (let n = 1; n <= limit; n++) if (slidingWindow(at(1.001), { current: n, previous: 10 }, limit).allowed) admitted++;
    expect(admitted).toBe(0);
  });

  it('Retry-After is the first moment one more request is allowed: later in this window, or in the next', () => {
    const check = (now: number, counts: { current: number; previous: number }, limit: number) => {
      const v = slidingWindow(now, counts, limit);
      if (v.allowed) throw new Error('expected a refusal');
      const retry = now + v.retryAfterSeconds * 1000;
      // At the given time the refused request still counts and one more fits; a second earlier it does not.
      const nextCounts = (t: number) => (Math.floor(t / HOUR_MS) === Math.floor(now / HOUR_MS)
        ? { current: counts.current + 1, previous: counts.previous }
        : { current: 1, previous: Math.floor(t / HOUR_MS) === Math.floor(now / HOUR_MS) + 1 ? counts.current : 0 });
      expect(slidingWindow(retry, nextCounts(retry), limit).allowed).toBe(true);
      expect(slidingWindow(retry - 1000, nextCounts(retry - 1000), limit).allowed).toBe(false);
      return v.retryAfterSeconds;
    };
    // The previous window's weight shrinks enough within this one: 4 + 1 + 6 * (1 - f) <= 6 at f = 5/6.
    expect(check(at(0.5), { current: 4, previous: 6 }, 6)).toBe(1200);
    // This window alone is over: in the next one it weighs 4 * (1 - g), and 1 + 4 * (1 - g) <= 3 at g = 1/2.
    expect(check(at(0.1), { current: 4, previous: 0 }, 3)).toBe(3240 + 1800);
    // A limit of 1 with this window used: the whole next window must pass.
    expect(check(at(0.9), { current: 2, previous: 5 }, 1)).toBe(360 + 3600);
    // Odd numbers round up to whole seconds and still hold.
    check(start + 1_234_567, { current: 7, previous: 13 }, 15);
    check(start + 3_599_999, { current: 1000, previous: 999 }, 1000);
  });
});

/*
 * What lets several kernels serve one ACME endpoint from the database: per-account
 * rate limits counted atomically (rateLimited + Retry-After, nothing created past
 * the limit), one-use nonces taken atomically, kv key quotas per grant and the
 * sweep of expired rows.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('ACME server: rate limits, nonces and the kv store behind them', () => {
  let t: TestKernel;
  let knex: Knex;
  let ca: string;
  let directory: string;
  let endpointId: string;

  beforeAll(async () => {
    const s = await startAcmeServer('iss-limits', { mode: 'trust_authenticated', rate_limits: { orders_per_hour: ORDERS_PER_HOUR, new_accounts_per_ip_per_hour: ACCOUNTS_PER_IP } });
    ({ t, directory } = s);
    knex = t.kernel.db.knex;
    ca = fs.readFileSync(s.cacert, 'utf8');
    endpointId = s.endpoint.body.id;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const ordersOf = async (account: string) => Number(((await knex('plugin_kv').where({ plugin_id: 'acme-server' }).whereRaw("left(key, 6) = 'order:'")
    .whereRaw("value->>'account' = ?", [account]).count({ n: '*' }).first()) as { n: string }).n);

  let first: RawAcme;

  it('new orders past the per-account limit get 429 rateLimited with Retry-After, and no order; other accounts are not affected', async () => {
    const c = (first = new RawAcme(directory, ca));
    const kid = await c.register();
    const account = kid.split('/').pop()!;
    const dir = await c.directory();
    const order = (name: string) => c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: name }] });
    for (let i = 0; i < ORDERS_PER_HOUR; i++) expect((await order(`ok${i}.limits.test`)).status).toBe(201);
    const limited = await order('over.limits.test');
    expect(limited.status).toBe(429);
    expect(limited.headers['content-type']).toBe('application/problem+json');
    expect(limited.body).toMatchObject({ type: 'urn:ietf:params:acme:error:rateLimited', status: 429 });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    // All four orders in this window (or nearly so): the estimate falls back to the limit during the next one.
    expect(retryAfter).toBeLessThanOrEqual(2 * 3600);
    expect(limited.headers['replay-nonce']).toBeTruthy();
    expect(await ordersOf(account)).toBe(ORDERS_PER_HOUR);

    const other = new RawAcme(directory, ca);
    await other.register();
    expect((await other.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'other.limits.test' }] })).status).toBe(201);
  });

  it('new accounts past the per-address limit get 429 rateLimited; an existing account is still found', async () => {
    // Two accounts were made from this address by the test above.
    const statuses: number[] = [];
    let last: Awaited<ReturnType<RawAcme['post']>> | undefined;
    for (let i = 0; i < ACCOUNTS_PER_IP; i++) {
      const c = new RawAcme(directory, ca);
      last = await c.post((await c.directory()).newAccount, { termsOfServiceAgreed: true });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([...Array(ACCOUNTS_PER_IP - 2).fill(201), 429, 429]);
    expect(last!.body.type).toBe('urn:ietf:params:acme:error:rateLimited');
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
    const accounts = Number(((await knex('plugin_kv').where({ plugin_id: 'acme-server' }).whereRaw("left(key, 5) = 'acct:'").count({ n: '*' }).first()) as { n: string }).n);
    expect(accounts).toBe(ACCOUNTS_PER_IP);
    // Looking up an account is not creating one.
    const found = await new RawAcme(directory, ca, first.key).post((await first.directory()).newAccount, { onlyReturnExisting: true });
    expect(found.status).toBe(200);
    expect(found.headers.location).toBe(first.kid);
  });

  it('a nonce is accepted once, even by requests racing for it', async () => {
    const c = new RawAcme(directory, ca);
    const dir = await c.directory();
    const nonce = await c.nonce();
    // Same nonce, eight requests at once: one is served (accountDoesNotExist for this fresh key), the rest are badNonce.
    const answers = await Promise.all(Array.from({ length: 8 }, () => c.request('POST', dir.newAccount, c.jws(dir.newAccount, { onlyReturnExisting: true }, nonce))));
    const types = answers.map((a) => String(a.body.type).replace('urn:ietf:params:acme:error:', ''));
    expect(types.filter((x) => x === 'badNonce')).toHaveLength(7);
    expect(types.filter((x) => x === 'accountDoesNotExist')).toHaveLength(1);
    // Only its use left a row: the count of uses, expiring with the nonce.
    const used = await knex('plugin_kv').where({ plugin_id: 'acme-server', key: `nonce-used:${nonce}` }).first(knex.raw('value'), knex.raw('extract(epoch from expires_at - now()) AS ttl'));
    expect(Number(used.value)).toBe(8);
    expect(Number(used.ttl)).toBeGreaterThan(3500);
    expect(Number(used.ttl)).toBeLessThanOrEqual(3601);
  });

  /** A nonce as any kernel holding the same master key would mint it (nonces.ts), with the expiry the test wants. */
  const mintNonce = (expiresAtSeconds: number, key = Buffer.from((deriveInstanceKey(t.kernel.cipher, 'acme-server', endpointId, 'acme-nonce') as { key: string }).key, 'base64url')) => {
    const body = Buffer.alloc(20);
    crypto.randomFillSync(body, 0, 16);
    body.writeUInt32BE(expiresAtSeconds, 16);
    return Buffer.concat([body, crypto.createHmac('sha256', key).update(body).digest().subarray(0, 16)]).toString('base64url');
  };

  it('accepts a nonce minted with the derived key elsewhere; forged, expired and reused nonces get badNonce', async () => {
    const c = new RawAcme(directory, ca);
    const dir = await c.directory();
    const lookup = (nonce: string) => c.request('POST', dir.newAccount, c.jws(dir.newAccount, { onlyReturnExisting: true }, nonce));
    const typeOf = async (nonce: string) => {
      const res = await lookup(nonce);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.headers['replay-nonce']).toMatch(/^[A-Za-z0-9_-]{48}$/);
      return `${res.status} ${String(res.body.type).replace('urn:ietf:params:acme:error:', '')}`;
    };
    const inAnHour = Math.floor(Date.now() / 1000) + 3600;
    // Another kernel sharing the master key: its nonce is good here, once.
    const elsewhere = mintNonce(inAnHour);
    expect(await typeOf(elsewhere)).toBe('400 accountDoesNotExist');
    expect(await typeOf(elsewhere)).toBe('400 badNonce');
    // Expired (a valid MAC), signed with another key, one bit flipped, cut short, made up: refused, nothing recorded.
    const issued = await c.nonce();
    const flipped = Buffer.from(issued, 'base64url');
    flipped[3] ^= 1;
    const bad = [mintNonce(Math.floor(Date.now() / 1000) - 1), mintNonce(inAnHour, crypto.randomBytes(32)), flipped.toString('base64url'), issued.slice(0, 40), 'made-up-nonce-value-123'];
    for (const nonce of bad) expect(await typeOf(nonce), nonce).toBe('400 badNonce');
    expect(await knex('plugin_kv').where({ plugin_id: 'acme-server' }).whereIn('key', bad.map((n) => `nonce-used:${n}`)).first()).toBeUndefined();
    // The untouched original still works once, then is a replay.
    expect(await typeOf(issued)).toBe('400 accountDoesNotExist');
    expect(await typeOf(issued)).toBe('400 badNonce');
  });

  it('handing out nonces stores nothing: 1,000 HEAD new-nonce write no kv row', async () => {
    const rows = async () => Number(((await knex('plugin_kv').where({ plugin_id: 'acme-server' }).count({ n: '*' }).first()) as { n: string | number }).n);
    const before = await rows();
    const newNonce = (await new RawAcme(directory, ca).directory()).newNonce;
    const agent = new https.Agent({ ca, keepAlive: true, maxSockets: 8 });
    const head = () => new Promise<string>((resolve, reject) => {
      https.request(newNonce, { method: 'HEAD', agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(String(res.headers['replay-nonce'])) : reject(new Error(`HEAD new-nonce: ${res.statusCode}`))));
      }).on('error', reject).end();
    });
    const nonces = new Set<string>();
    try {
      for (let i = 0; i < 125; i++) for (const n of await Promise.all(Array.from({ length: 8 }, head))) nonces.add(n);
    } finally {
      agent.destroy();
    }
    expect(nonces.size).toBe(1000);
    expect(await rows()).toBe(before);
  });

  describe('kv', () => {
    let broker: KernelCapabilityBroker;
    const ctx = (pluginId: string, kv: GrantedCapabilities['kv']): BrokerCallContext => ({ pluginId, instanceId: null, grants: { kv }, deadline: Date.now() + 30_000 });
    const call = (c: BrokerCallContext, op: BrokerOp) => broker.handle(c, op);
    const set = (c: BrokerCallContext, key: string, ttlSeconds?: number) => call(c, { op: 'kv.set', key, value: key, ...(ttlSeconds ? { ttlSeconds } : {}) });
    const denied = async (p: Promise<unknown>, message: RegExp) => {
      const err = await p.then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(PluginCallError);
      expect(err).toMatchObject({ code: 'capability_denied', message: expect.stringMatching(message) });
    };

    beforeAll(() => {
      const log = pino({ level: 'silent' });
      broker = new KernelCapabilityBroker({ knex, cipher: ConfigCipher.fromKey(crypto.randomBytes(32)), audit: new AuditLog(knex, log), log, kv: { maxKeysPerPlugin: 4, maxKeysCeiling: 6 } });
    });

    it('a plugin keeps at most the keys its grant allows: kv: true the default, kv: { maxKeys } up to the kernel ceiling', async () => {
      const plain = ctx('quota-plain', true);
      for (let i = 0; i < 4; i++) await set(plain, `k${i}`);
      await denied(set(plain, 'k4'), /kv store is full \(4 keys\)/);
      await denied(call(plain, { op: 'kv.increment', key: 'counter' }), /full/);
      await set(plain, 'k0'); // overwriting is not a new key
      expect(await call(plain, { op: 'kv.take', key: 'k0' })).toEqual({ value: 'k0' });
      await set(plain, 'k4'); // taking freed one

      const raised = ctx('quota-raised', { maxKeys: 5 });
      for (let i = 0; i < 5; i++) await set(raised, `k${i}`);
      await denied(set(raised, 'k5'), /full \(5 keys\)/);

      const greedy = ctx('quota-greedy', { maxKeys: 1_000_000 });
      for (let i = 0; i < 6; i++) await set(greedy, `k${i}`);
      await denied(set(greedy, 'k6'), /full \(6 keys\)/);
      await denied(call(ctx('quota-none', undefined), { op: 'kv.take', key: 'k' }), /not granted/);

      // Writes racing for the last places: exactly the quota gets in.
      const racing = ctx('quota-race', { maxKeys: 5 });
      const outcomes = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => set(racing, `r${i}`)));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(5);
      expect(Number(((await knex('plugin_kv').where({ plugin_id: 'quota-race' }).count({ n: '*' }).first()) as { n: string }).n)).toBe(5);

      // A manifest cannot ask for more than the SDK's ceiling; the ACME server's own request is valid.
      const manifest = JSON.parse(fs.readFileSync(new URL('../../plugins/protocols/acme-server/package.json', import.meta.url), 'utf8')).certctl;
      expect(checkManifest(manifest, '0.1.0')).toMatchObject({ ok: true });
      const tooMuch = checkManifest({ ...manifest, capabilities: { ...manifest.capabilities, kv: { maxKeys: KV_MAX_KEYS_CEILING + 1 } } }, '0.1.0');
      expect(tooMuch).toMatchObject({ ok: false, reason: expect.stringMatching(/kv/) });
      // For installed plugins the larger quota is a grant item of its own, which the operator grants or not.
      expect(capabilityItems({ kv: { maxKeys: 50_000 } })).toEqual(['kv', 'kv:max-keys=50000']);
      expect(fromItems(['kv', 'kv:max-keys=50000'])).toEqual({ kv: { maxKeys: 50_000 } });
      expect(fromItems(['kv'])).toEqual({ kv: true });
    });

    it('expired keys do not count, and the sweep deletes them', async () => {
      const c = ctx('quota-ttl', true);
      for (let i = 0; i < 4; i++) await set(c, `short${i}`, 0.05);
      await new Promise((r) => setTimeout(r, 120));
      expect(await call(c, { op: 'kv.get', key: 'short0' })).toBeNull();
      expect(await call(c, { op: 'kv.take', key: 'short1' })).toBeNull();
      await set(c, 'fresh', 3600); // four expired keys leave room
      await set(c, 'expiring', 0.05);
      await new Promise((r) => setTimeout(r, 120));
      expect(await sweepExpiredKv(new PluginKv(knex))).toBeGreaterThanOrEqual(1);
      expect((await knex('plugin_kv').where({ plugin_id: 'quota-ttl' }).pluck('key')).sort()).toEqual(['fresh']);
    });

    it('take and increment reach a sandboxed (isolate) plugin through the broker', async () => {
      const source = `module.exports = { kind: 'issuer', async validateConfig() { return { ok: true }; },
        async probe(_req, ctx) {
          await ctx.kv.set('nonce', 'n-1', { ttlSeconds: 60 });
          const first = await ctx.kv.take('nonce');
          const second = await ctx.kv.take('nonce');
          const a = await ctx.kv.increment('hits', { ttlSeconds: 60 });
          const b = await ctx.kv.increment('hits', { by: 4 });
          return { first, second: second === undefined ? 'absent' : second, a, b };
        } };`;
      const runner = createIsolateRunner({ pluginId: 'isolate-kv', source, filename: 'isolate-kv/index.js', kind: 'issuer', grants: { kv: true }, broker, memoryLimitMb: 32, cpuTimeoutMs: 1000, deadlineGraceMs: 500 });
      try {
        const out = await runner.call({ pluginId: 'isolate-kv', instanceId: null, method: 'probe', request: {}, config: {}, deadline: Date.now() + 20_000 });
        expect(out).toEqual({ first: 'n-1', second: 'absent', a: 1, b: 5 });
      } finally {
        await runner.close();
      }
    });

    it('take and increment are atomic under concurrency; a counter keeps its window', async () => {
      const kv = new PluginKv(knex);
      await kv.set('atomic', 'token', 'one-use', 60);
      const takes = await Promise.all(Array.from({ length: 10 }, () => kv.take('atomic', 'token')));
      expect(takes.filter((v) => v === 'one-use')).toHaveLength(1);
      expect(takes.filter((v) => v === undefined)).toHaveLength(9);

      const counts = await Promise.all(Array.from({ length: 20 }, () => kv.increment('atomic', 'hits', 1, 3600)));
      expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      const before = (await knex('plugin_kv').where({ plugin_id: 'atomic', key: 'hits' }).first('expires_at')) as { expires_at: Date };
      expect(await kv.increment('atomic', 'hits', 5, 60)).toBe(25);
      const after = (await knex('plugin_kv').where({ plugin_id: 'atomic', key: 'hits' }).first('expires_at')) as { expires_at: Date };
      expect(new Date(after.expires_at).getTime()).toBe(new Date(before.expires_at).getTime());
      // A non-number, or an expired counter, starts over.
      await kv.set('atomic', 'hits', 'text');
      expect(await kv.increment('atomic', 'hits', 2)).toBe(2);
      await kv.increment('atomic', 'brief', 7, 0.05);
      await new Promise((r) => setTimeout(r, 120));
      expect(await kv.increment('atomic', 'brief', 1, 60)).toBe(1);
      await expect(kv.increment('atomic', 'hits', 1.5)).rejects.toThrow(/safe integer/);
    });
  });
});
