import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import { AuditLog } from '../../../kernel/src/audit/audit-log.js';
import type { Database } from '../../../kernel/src/db/database.js';
import { KernelCapabilityBroker } from '../../../kernel/src/plugins/broker/capability-broker.js';
import type { PluginEvent } from '../../../kernel/src/plugins/broker/plugin-events.js';
import { createIsolateRunner } from '../../../kernel/src/plugins/runners/isolate/index.js';
import { PluginCallError, type BrokerCallContext, type BrokerOp, type GrantedCapabilities } from '../../../kernel/src/plugins/host/contracts.js';
import { ConfigCipher } from '../../../kernel/src/secrets/config-cipher.js';
import { freshDatabase, POSTGRES_UNAVAILABLE } from '../../support/test-db.js';
import { capturingLogger } from '../support.js';

/** A small HTTP server on loopback that echoes what it got, or misbehaves on request. */
async function echoServer(): Promise<{ port: number; seen: { host?: string; method?: string; body: string }[]; close(): Promise<void> }> {
  const seen: { host?: string; method?: string; body: string }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ host: req.headers.host, method: req.method, body: Buffer.concat(chunks).toString() });
      if (req.url === '/big') return res.end('x'.repeat(6000));
      if (req.url === '/big-chunked') {
        res.write('y'.repeat(3000));
        return setTimeout(() => res.end('y'.repeat(3000)), 10);
      }
      if (req.url === '/binary') return res.end(Buffer.from([0xff, 0xfe, 0x00, 0x01]));
      if (req.url === '/never') return; // never answers
      if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        return res.end();
      }
      res.writeHead(201, { 'content-type': 'text/plain', 'x-reply': 'yes' });
      res.end(`echo ${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe.skipIf(POSTGRES_UNAVAILABLE)('KernelCapabilityBroker', () => {
  let db: Database;
  let drop: () => Promise<void>;
  let audit: AuditLog;
  let broker: KernelCapabilityBroker;
  let server: Awaited<ReturnType<typeof echoServer>>;
  const cipher = ConfigCipher.fromKey(crypto.randomBytes(32));
  const logs = capturingLogger();
  // Fake DNS: names under example.test resolve where the test says.
  const dnsTable: Record<string, string[]> = {
    'svc.example.test': ['127.0.0.1'],
    'wild.example.test': ['127.0.0.1'],
    'meta.example.test': ['169.254.169.254'],
    'mixed.example.test': ['169.254.169.254', '127.0.0.1'],
    'v6meta.example.test': ['fd00:ec2::254'],
    'private.example.test': ['10.255.255.1'],
  };
  const lookup = async (host: string) => {
    const a = dnsTable[host];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  beforeAll(async () => {
    ({ db, drop } = await freshDatabase());
    audit = new AuditLog(db.knex, logs.log);
    broker = new KernelCapabilityBroker({ knex: db.knex, cipher, audit, log: logs.log, fetch: { lookup, limits: { maxResponseBytes: 5000 } }, kv: { maxKeysPerPlugin: 5, maxValueBytes: 1024 } });
    server = await echoServer();
  });
  afterAll(async () => {
    await server?.close();
    await audit?.close();
    await db?.close();
    await drop?.();
  });

  // The deadline is read when a call is made, not when the context is built: contexts shared by
  // a describe block are built at collection time, before a slow beforeAll (database set-up under load).
  const ctxFor = (grants: GrantedCapabilities, over: Partial<BrokerCallContext> = {}): BrokerCallContext => ({
    pluginId: 'plug-a', instanceId: null, grants, get deadline() { return Date.now() + 10_000; }, ...over,
  });
  /** Time passing for one kv entry: its expiry moved to just before the database's now (no sleeps, no clock races). */
  const expire = (pluginId: string, key: string) => db.knex('plugin_kv').where({ plugin_id: pluginId, key }).update({ expires_at: db.knex.raw("now() - interval '1 millisecond'") });
  /** The TTL the broker stored: expires_at minus the write's own timestamp, in seconds. */
  const storedTtl = async (pluginId: string, key: string) => Number((await db.knex('plugin_kv').where({ plugin_id: pluginId, key }).first(db.knex.raw('extract(epoch from expires_at - updated_at) AS ttl'))).ttl);
  const denied = async (ctx: BrokerCallContext, op: BrokerOp): Promise<string> => {
    try {
      await broker.handle(ctx, op);
    } catch (err) {
      expect(err).toBeInstanceOf(PluginCallError);
      expect((err as PluginCallError).code).toBe('capability_denied');
      return (err as Error).message;
    }
    throw new Error(`${op.op} was not refused`);
  };
  const fetchOp = (request: Record<string, Json>): BrokerOp => ({ op: 'http.fetch', request });

  describe('kv', () => {
    const kv = ctxFor({ kv: true });

    it('stores JSON per plugin: get, set, delete, list with prefix; absent reads as null', async () => {
      await broker.handle(kv, { op: 'kv.set', key: 'acct/1', value: { id: 1, tags: ['a'] } });
      await broker.handle(kv, { op: 'kv.set', key: 'acct/2', value: null });
      await broker.handle(kv, { op: 'kv.set', key: 'a%_/x', value: 'odd' });
      expect(await broker.handle(kv, { op: 'kv.get', key: 'acct/1' })).toEqual({ value: { id: 1, tags: ['a'] } });
      expect(await broker.handle(kv, { op: 'kv.get', key: 'acct/2' })).toEqual({ value: null });
      expect(await broker.handle(kv, { op: 'kv.get', key: 'nope' })).toBeNull();
      expect(await broker.handle(kv, { op: 'kv.list', prefix: 'acct/' })).toEqual(['acct/1', 'acct/2']);
      // % and _ in a prefix are literal characters, not patterns.
      expect(await broker.handle(kv, { op: 'kv.list', prefix: 'a%_' })).toEqual(['a%_/x']);
      await broker.handle(kv, { op: 'kv.set', key: 'acct/1', value: 'replaced' });
      expect(await broker.handle(kv, { op: 'kv.get', key: 'acct/1' })).toEqual({ value: 'replaced' });
      await broker.handle(kv, { op: 'kv.delete', key: 'acct/1' });
      expect(await broker.handle(kv, { op: 'kv.list' })).toEqual(['a%_/x', 'acct/2']);
    });

    it('is private to each plugin', async () => {
      const other = ctxFor({ kv: true }, { pluginId: 'plug-b' });
      expect(await broker.handle(other, { op: 'kv.get', key: 'acct/2' })).toBeNull();
      expect(await broker.handle(other, { op: 'kv.list' })).toEqual([]);
      await broker.handle(other, { op: 'kv.set', key: 'acct/2', value: 'b' });
      expect(await broker.handle(kv, { op: 'kv.get', key: 'acct/2' })).toEqual({ value: null });
      const rows = await db.knex('plugin_kv').select('plugin_id', 'key').orderBy(['plugin_id', 'key']);
      expect(rows).toEqual([{ plugin_id: 'plug-a', key: 'a%_/x' }, { plugin_id: 'plug-a', key: 'acct/2' }, { plugin_id: 'plug-b', key: 'acct/2' }]);
    });

    it('honours TTLs on read and list', async () => {
      const c = ctxFor({ kv: true }, { pluginId: 'plug-ttl' });
      await broker.handle(c, { op: 'kv.set', key: 'short', value: 1, ttlSeconds: 1.5 });
      await broker.handle(c, { op: 'kv.set', key: 'long', value: 2, ttlSeconds: 3600 });
      // Fractions of a second are kept (to the millisecond).
      expect(await storedTtl('plug-ttl', 'short')).toBe(1.5);
      expect(await broker.handle(c, { op: 'kv.get', key: 'short' })).toEqual({ value: 1 });
      expect(await broker.handle(c, { op: 'kv.list' })).toEqual(['long', 'short']);
      await expire('plug-ttl', 'short');
      expect(await broker.handle(c, { op: 'kv.get', key: 'short' })).toBeNull();
      expect(await broker.handle(c, { op: 'kv.list' })).toEqual(['long']);
      expect(await denied(c, { op: 'kv.set', key: 'k', value: 1, ttlSeconds: -1 })).toContain('ttlSeconds');
    });

    it('caps value size and key count; expired keys make room', async () => {
      const c = ctxFor({ kv: true }, { pluginId: 'plug-cap' });
      expect(await denied(c, { op: 'kv.set', key: 'big', value: 'x'.repeat(2000) })).toMatch(/over the 1024-byte limit/);
      for (let i = 0; i < 4; i++) await broker.handle(c, { op: 'kv.set', key: `k${i}`, value: i });
      await broker.handle(c, { op: 'kv.set', key: 'temp', value: 't', ttlSeconds: 60 });
      expect(await denied(c, { op: 'kv.set', key: 'k5', value: 5 })).toMatch(/full \(5 keys\)/);
      await broker.handle(c, { op: 'kv.set', key: 'k0', value: 'overwrite is fine when full' });
      await expire('plug-cap', 'temp');
      await broker.handle(c, { op: 'kv.set', key: 'k5', value: 5 });
      expect(await broker.handle(c, { op: 'kv.list' })).toEqual(['k0', 'k1', 'k2', 'k3', 'k5']);
      expect(await denied(c, { op: 'kv.get', key: '' })).toContain('kv key');
    });

    it('is refused without the kv grant', async () => {
      expect(await denied(ctxFor({}), { op: 'kv.get', key: 'x' })).toContain('not granted to this plugin (capability kv)');
    });
  });

  describe('secrets.get', () => {
    it("returns the calling instance's own decrypted secrets and nothing of other plugins' instances", async () => {
      await db.knex('issuers').insert([
        { id: 'iss-mine', name: 'mine', type: 'plug-a', config: JSON.stringify({ url: 'u' }), encrypted_config: cipher.sealJson({ api_token: 'tok-1', auth: { password: 'pw' } }) },
        { id: 'iss-other', name: 'other', type: 'plug-b', config: '{}', encrypted_config: cipher.sealJson({ api_token: 'tok-2' }) },
      ]);
      await db.knex('notifiers').insert({ id: 'ntf-mine', name: 'n', type: 'plug-a', config: '{}', encrypted_config: cipher.sealJson({ webhook_secret: 's3' }) });
      const mine = ctxFor({}, { instanceId: 'iss-mine' });
      expect(await broker.handle(mine, { op: 'secrets.get', path: 'api_token' })).toBe('tok-1');
      expect(await broker.handle(mine, { op: 'secrets.get', path: 'auth.password' })).toBe('pw');
      expect(await broker.handle(mine, { op: 'secrets.get', path: 'auth' })).toBeNull();
      expect(await broker.handle(mine, { op: 'secrets.get', path: 'missing' })).toBeNull();
      expect(await broker.handle(ctxFor({}, { instanceId: 'ntf-mine' }), { op: 'secrets.get', path: 'webhook_secret' })).toBe('s3');
      // Another plugin's instance id gets nothing, and so does a call without an instance.
      expect(await broker.handle(ctxFor({}, { instanceId: 'iss-other' }), { op: 'secrets.get', path: 'api_token' })).toBeNull();
      expect(await broker.handle(ctxFor({}), { op: 'secrets.get', path: 'api_token' })).toBeNull();
      expect(await denied(mine, { op: 'secrets.get', path: '__proto__..x' })).toContain('dot path');
    });
  });

  describe('secrets.deriveKey', () => {
    const master = crypto.randomBytes(32);
    const kernelA = () => new KernelCapabilityBroker({ knex: db.knex, cipher: ConfigCipher.fromKey(master), audit, log: logs.log });
    const derive = (b: KernelCapabilityBroker, ctx: BrokerCallContext, label: string) => b.handle(ctx, { op: 'secrets.deriveKey', label });

    it('derives 32 bytes per plugin, instance and label, the same on every kernel sharing the master key, storing nothing', async () => {
      const [a, b] = [kernelA(), kernelA()];
      const mine = ctxFor({}, { instanceId: 'prt-1' });
      const rows = async () => Number(((await db.knex('plugin_kv').count({ n: '*' }).first()) as { n: string | number }).n);
      const before = await rows();
      const key = (await derive(a, mine, 'acme-nonce')) as string;
      expect(Buffer.from(key, 'base64url')).toHaveLength(32);
      expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(await derive(b, mine, 'acme-nonce')).toBe(key);
      expect(await rows()).toBe(before);
      const others = await Promise.all([
        derive(a, mine, 'acme-nonce2'),
        derive(a, ctxFor({}, { instanceId: 'prt-2' }), 'acme-nonce'),
        derive(a, ctxFor({}), 'acme-nonce'),
        derive(a, ctxFor({}, { pluginId: 'plug-b', instanceId: 'prt-1' }), 'acme-nonce'),
        // Another master key (another installation) derives another key.
        derive(broker, mine, 'acme-nonce'),
      ]);
      expect(new Set([key, ...others]).size).toBe(others.length + 1);
      // The op names only a label: whatever else it carries, plugin and instance come from the call.
      expect(await a.handle(mine, { op: 'secrets.deriveKey', label: 'acme-nonce', pluginId: 'plug-b', instanceId: 'prt-2' } as BrokerOp)).toBe(key);
    });

    it('refuses labels that are empty, long, not printable ASCII or not strings', async () => {
      for (const label of ['', 'x'.repeat(65), 'a\nb', 'a\0b', 'clé', 42 as unknown as string]) {
        expect(await denied(ctxFor({}, { instanceId: 'prt-1' }), { op: 'secrets.deriveKey', label })).toContain('printable ASCII');
      }
      expect(await derive(broker, ctxFor({}), 'x'.repeat(64))).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it('reaches a sandboxed (isolate) plugin as ctx.secrets.deriveKey, bound to that call', async () => {
      const source = `module.exports = { kind: 'issuer', async validateConfig() { return { ok: true }; },
        async probe(_req, ctx) { return { key: await ctx.secrets.deriveKey('acme-nonce') }; } };`;
      const a = kernelA();
      const runner = createIsolateRunner({ pluginId: 'plug-a', source, filename: 'plug-a/index.js', kind: 'issuer', grants: {}, broker: a, memoryLimitMb: 32, cpuTimeoutMs: 1000, deadlineGraceMs: 500 });
      try {
        const out = await runner.call({ pluginId: 'plug-a', instanceId: 'prt-1', method: 'probe', request: {}, config: {}, deadline: Date.now() + 20_000 });
        expect(out).toEqual({ key: await derive(a, ctxFor({}, { instanceId: 'prt-1' }), 'acme-nonce') });
      } finally {
        await runner.close();
      }
    });
  });

  describe('events.emit', () => {
    it('appends a plugin_event audit row and publishes on the bus; refused without the grant', async () => {
      const seen: PluginEvent[] = [];
      broker.events.on('event', (e) => seen.push(e));
      await broker.handle(ctxFor({ events: true }, { instanceId: 'ntf-mine' }), { op: 'events.emit', type: 'order.placed', data: { orderId: 'o-1' } });
      expect(seen).toMatchObject([{ pluginId: 'plug-a', instanceId: 'ntf-mine', type: 'order.placed', data: { orderId: 'o-1' } }]);
      const row = await db.knex('audit_events').where({ action: 'plugin_event' }).first();
      expect(row).toMatchObject({ category: 'system', actor: 'plugin:plug-a', actor_type: 'plugin', resource_type: 'plugin', resource_id: 'plug-a' });
      const details = typeof row.details === 'string' ? JSON.parse(row.details) : row.details;
      expect(details).toEqual({ type: 'order.placed', instance_id: 'ntf-mine', data: { orderId: 'o-1' } });
      expect(await denied(ctxFor({}), { op: 'events.emit', type: 'x', data: {} })).toContain('capability events');
      expect(await denied(ctxFor({ events: true }), { op: 'events.emit', type: 'bad type!', data: {} })).toContain('type must be');
      expect(await denied(ctxFor({ events: true }), { op: 'events.emit', type: 'big', data: { s: 'x'.repeat(20_000) } })).toContain('over the 16384-byte limit');
    });
  });

  describe('log', () => {
    it('logs through a child tagged with plugin and instance, secret-looking fields redacted', async () => {
      await broker.handle(ctxFor({}, { instanceId: 'iss-mine' }), { op: 'log', level: 'warn', message: 'issuing\u0007now', fields: { password: 'hunter2', nested: { api_key: 'k', ok: 1 } } });
      const line = logs.lines().map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'issuing now');
      expect(line).toMatchObject({ level: 40, plugin_id: 'plug-a', instance_id: 'iss-mine', fields: { password: '[redacted]', nested: { api_key: '[redacted]', ok: 1 } } });
      expect(logs.text()).not.toContain('hunter2');
    });

    it('drops lines past the per-call cap', async () => {
      const small = new KernelCapabilityBroker({ knex: db.knex, cipher, audit, log: logs.log, maxLogLinesPerCall: 3 });
      const c = ctxFor({});
      for (let i = 0; i < 10; i++) await small.handle(c, { op: 'log', level: 'info', message: `spam-${i}` });
      const spam = logs.lines().filter((l) => l.includes('spam-'));
      expect(spam).toHaveLength(3);
      expect(logs.text()).toContain('plugin log limit reached (3 lines in one call)');
    });
  });

  describe('http.fetch', () => {
    const loopback = () => ctxFor({ http: { hosts: ['http://127.0.0.1', 'svc.example.test', '*.example.test'] } });

    it('reaches a declared host and returns status, headers and body', async () => {
      const res = await broker.handle(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/issue?x=1`, method: 'POST', body: 'csr-data', headers: { 'X-Test': '1', Host: 'evil.test' } })) as Record<string, Json>;
      expect(res).toMatchObject({ status: 201, body: 'echo POST /issue?x=1 csr-data', bodyEncoding: 'utf8' });
      expect((res.headers as Record<string, string>)['x-reply']).toBe('yes');
      // The Host header comes from the URL, never from the plugin.
      expect(server.seen.at(-1)?.host).toBe(`127.0.0.1:${server.port}`);
    });

    it('returns binary bodies as base64 and does not follow redirects', async () => {
      expect(await broker.handle(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/binary` }))).toMatchObject({ body: Buffer.from([0xff, 0xfe, 0, 1]).toString('base64'), bodyEncoding: 'base64' });
      expect(await broker.handle(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/redirect` }))).toMatchObject({ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
    });

    it('connects to the address it checked (pinned), with the name kept for Host', async () => {
      // svc.example.test is declared exactly, so its loopback address is allowed; the request reaches our server.
      const res = await broker.handle(ctxFor({ http: { hosts: ['http://svc.example.test'] } }), fetchOp({ url: `http://svc.example.test:${server.port}/pinned` }));
      expect(res).toMatchObject({ status: 201, body: 'echo GET /pinned ' });
      expect(server.seen.at(-1)?.host).toBe(`svc.example.test:${server.port}`);
    });

    it('refuses undeclared hosts, plain http where only https is declared, and other ports', async () => {
      expect(await denied(loopback(), fetchOp({ url: 'https://elsewhere.test/' }))).toContain('host elsewhere.test is not among the plugin\'s granted hosts');
      expect(await denied(ctxFor({ http: { hosts: ['127.0.0.1'] } }), fetchOp({ url: `http://127.0.0.1:${server.port}/` }))).toMatch(/http to 127\.0\.0\.1:\d+ is not granted/);
      expect(await denied(ctxFor({ http: { hosts: ['http://127.0.0.1:1'] } }), fetchOp({ url: `http://127.0.0.1:${server.port}/` }))).toMatch(/is not granted \(declared: http:\/\/127\.0\.0\.1:1\)/);
      expect(await denied(ctxFor({ http: { hosts: ['http://127.0.0.1'] } }), fetchOp({ url: 'file:///etc/passwd' }))).toContain('scheme file: is not allowed');
      expect(await denied(ctxFor({ http: { hosts: ['http://127.0.0.1'] } }), fetchOp({ url: 'http://user:pw@127.0.0.1/' }))).toContain('credentials in the URL');
      expect(await denied(ctxFor({}), fetchOp({ url: 'https://svc.example.test/' }))).toContain('capability http');
    });

    it('refuses loopback, link-local and metadata addresses reached through a wildcard or by DNS', async () => {
      // *.example.test matches, but wild.example.test resolves to loopback: a wildcard is not an exact declaration.
      expect(await denied(loopback(), fetchOp({ url: `https://wild.example.test:${server.port}/` }))).toMatch(/127\.0\.0\.1 \(loopback\).*declare that exact host/);
      // Even an exactly declared name may not lead to a metadata address; only the literal IP may.
      expect(await denied(ctxFor({ http: { hosts: ['meta.example.test'] } }), fetchOp({ url: 'https://meta.example.test/' }))).toMatch(/169\.254\.169\.254 \(metadata\).*declare that exact IP address/);
      expect(await denied(ctxFor({ http: { hosts: ['v6meta.example.test'] } }), fetchOp({ url: 'https://v6meta.example.test/' }))).toContain('fd00:ec2::254 (metadata)');
      expect(await denied(ctxFor({ http: { hosts: ['*.example.test'] } }), fetchOp({ url: 'https://meta.example.test/' }))).toContain('(metadata)');
      // An undeclared metadata IP literal is refused before any DNS or connection.
      expect(await denied(loopback(), fetchOp({ url: 'http://169.254.169.254/latest/meta-data/' }))).toContain('not among the plugin\'s granted hosts');
      expect(await denied(ctxFor({ http: { hosts: ['http://169.254.169.254.nip.io'] } }), fetchOp({ url: 'http://[::ffff:169.254.169.254]/' }))).toContain('not among');
    });

    it('of several addresses, pins one that is allowed', async () => {
      const res = await broker.handle(ctxFor({ http: { hosts: ['http://mixed.example.test'] } }), fetchOp({ url: `http://mixed.example.test:${server.port}/mixed` }));
      expect(res).toMatchObject({ status: 201 });
    });

    it('caps the response size by its declared length', async () => {
      expect(await denied(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/big` }))).toContain('is 6000 bytes, over the 5000-byte limit');
    });

    it('caps streamed responses without a length', async () => {
      expect(await denied(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/big-chunked` }))).toContain('exceeds the 5000-byte limit');
    });

    it('times out at the least of the request timeout, the host cap and the deadline; I/O failures are plain errors', async () => {
      const t0 = Date.now();
      const err = await broker.handle(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/never`, timeoutMs: 200 })).catch((e: unknown) => e);
      expect(err).not.toBeInstanceOf(PluginCallError);
      expect(err).toMatchObject({ code: 'ETIMEDOUT' });
      expect(Date.now() - t0).toBeLessThan(2000);
      const late = await broker.handle(ctxFor({ http: { hosts: ['http://127.0.0.1'] } }, { deadline: Date.now() + 1000 }), fetchOp({ url: `http://127.0.0.1:${server.port}/never` })).catch((e: unknown) => e);
      expect(late).toMatchObject({ code: 'ETIMEDOUT' });
      const refused = await broker.handle(ctxFor({ http: { hosts: ['http://127.0.0.1'] } }), fetchOp({ url: 'http://127.0.0.1:1/' })).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'ECONNREFUSED' });
      const nx = await broker.handle(loopback(), fetchOp({ url: 'https://nx.example.test/' })).catch((e: unknown) => e);
      expect(nx).toMatchObject({ code: 'ENOTFOUND' });
    });

    it('refuses malformed requests', async () => {
      expect(await denied(loopback(), { op: 'http.fetch', request: 'http://x' })).toContain('expects a request object');
      expect(await denied(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/`, method: 'TRACE' }))).toContain('method must be one of');
      expect(await denied(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/`, headers: { 'bad header': 'x' } }))).toContain('is not a valid header');
      expect(await denied(loopback(), fetchOp({ url: `http://127.0.0.1:${server.port}/`, headers: { x: 'a\r\nInjected: 1' } }))).toContain('is not a valid header');
    });
  });

  describe('agent-side and unknown ops', () => {
    it('always refuses fs and exec in the kernel, and unknown or malformed ops', async () => {
      const all = ctxFor({ fs: { paths: ['/tmp'] }, exec: { commands: ['/bin/echo'] } });
      expect(await denied(all, { op: 'fs.read', path: '/tmp/x' })).toContain('agent-side capability');
      expect(await denied(all, { op: 'fs.write', path: '/tmp/x', data: 'd' })).toContain('agent-side capability');
      expect(await denied(all, { op: 'exec.run', command: '/bin/echo', args: [] })).toContain('agent-side capability');
      expect(await denied(all, { op: 'net.connect' } as unknown as BrokerOp)).toContain('unknown host call');
      expect(await denied(all, null as unknown as BrokerOp)).toContain('malformed');
    });

    it('refuses ops after the call deadline with timeout', async () => {
      const err = await broker.handle(ctxFor({ kv: true }, { deadline: Date.now() - 1 }), { op: 'kv.get', key: 'x' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'timeout' });
    });
  });
});
