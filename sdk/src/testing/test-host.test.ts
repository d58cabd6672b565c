import { describe, expect, it } from 'vitest';
import { definePlugin, type IssuerPlugin, type Json, type PluginContext } from '../index.js';
import { CapabilityError, createTestHost, PluginCallFailure } from './index.js';

/** An issuer whose issue() runs whatever the test puts in `act`, with the context. */
const probe = (act: (ctx: PluginContext, request: Record<string, Json>) => Promise<unknown>) =>
  definePlugin({ kind: 'issuer', issue: async (request, ctx) => act(ctx, request as unknown as Record<string, Json>) as never } satisfies IssuerPlugin);

const failed = { status: 'failed', reason: 'test', retryable: false } as const;

describe('createTestHost: capabilities behind the host grant checks', () => {
  it('refuses every capability that was not granted, inside the plugin and as the call outcome', async () => {
    const host = createTestHost({ plugin: probe(async () => failed), http: () => ({ status: 200 }) });
    const { ctx } = host;
    await expect(ctx.http.fetch({ url: 'https://ca.example.com/' })).rejects.toThrow(CapabilityError);
    await expect(ctx.kv.get('k')).rejects.toThrow(/kv\.get is not granted to this plugin \(capability kv\)/);
    await expect(ctx.events.emit('issued', {})).rejects.toThrow(/events\.emit is not granted/);
    await expect(ctx.fs.read('/etc/passwd')).rejects.toThrow(/granted no file paths/);
    await expect(ctx.exec.run('/bin/sh', ['-c', 'id'])).rejects.toThrow(/exec\.run is not granted/);
    expect(host.requests).toEqual([]);

    const leaky = createTestHost({ plugin: probe((ctx) => ctx.kv.get('k')) });
    const err = await leaky.call('issue', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginCallFailure);
    expect(err).toMatchObject({ code: 'capability_denied', message: expect.stringMatching(/capability kv/) });
  });

  it('lets granted fetches through to the fake network and applies the host rules', async () => {
    const seen: string[] = [];
    const host = createTestHost({
      plugin: probe(async () => failed),
      grants: { http: { hosts: ['ca.example.com', '*.ra.example.com:8443', 'http://127.0.0.1', 'metadata.local'] } },
      dns: { 'metadata.local': ['169.254.169.254'], 'evil.ra.example.com': ['127.0.0.1'] },
      http: (req) => {
        seen.push(`${req.method} ${req.url} ${req.body ?? ''}`);
        return { status: 201, headers: { 'X-Trace': 'abc' }, body: { ok: true } };
      },
    });
    const { fetch } = host.ctx.http;
    const res = await fetch({ url: 'https://ca.example.com:9443/sign', method: 'POST', headers: { authorization: 'Bearer t', Host: 'evil' }, body: 'csr' });
    expect(res).toEqual({ status: 201, headers: { 'x-trace': 'abc', 'content-type': 'application/json' }, body: '{"ok":true}', bodyEncoding: 'utf8' });
    expect(host.requests[0].headers).toEqual({ authorization: 'Bearer t' });
    await fetch({ url: 'https://a.ra.example.com:8443/' });
    await fetch({ url: 'http://127.0.0.1:4711/health' });
    expect(seen).toEqual(['POST https://ca.example.com:9443/sign csr', 'GET https://a.ra.example.com:8443/ ', 'GET http://127.0.0.1:4711/health ']);

    await expect(fetch({ url: 'https://evil.example.net/' })).rejects.toThrow(/host evil\.example\.net is not among the plugin's granted hosts/);
    await expect(fetch({ url: 'http://ca.example.com/' })).rejects.toThrow(/http to ca\.example\.com:80 is not granted/);
    await expect(fetch({ url: 'https://a.ra.example.com/' })).rejects.toThrow(/https to a\.ra\.example\.com:443 is not granted/);
    await expect(fetch({ url: 'https://ra.example.com:8443/' })).rejects.toThrow(/not among/);
    await expect(fetch({ url: 'ftp://ca.example.com/' })).rejects.toThrow(/scheme ftp: is not allowed/);
    await expect(fetch({ url: 'https://user:pw@ca.example.com/' })).rejects.toThrow(/credentials in the URL/);
    // A wildcard never reaches loopback; a name never reaches a metadata address, however it is declared.
    await expect(fetch({ url: 'https://evil.ra.example.com:8443/' })).rejects.toThrow(/127\.0\.0\.1 \(loopback\)/);
    await expect(fetch({ url: 'https://metadata.local/' })).rejects.toThrow(/169\.254\.169\.254 \(metadata\)/);
    await expect(fetch({ url: 'https://ca.example.com/', method: 'TRACE' as never })).rejects.toThrow(/method must be one of/);
    await expect(fetch({ url: 'https://ca.example.com/', headers: { 'x-a': 'b\r\nInjected: 1' } })).rejects.toThrow(/not a valid header/);
    expect(host.requests).toHaveLength(3);
  });

  it('answers binary bodies in base64, caps responses, and reports a missing network like an unreachable host', async () => {
    const big = createTestHost({ plugin: probe(async () => failed), grants: { http: { hosts: ['ca.example.com'] } }, http: (r) => (r.url.endsWith('/der') ? { status: 200, body: Buffer.from([0x30, 0x82, 0xff]) } : { status: 200, body: 'x'.repeat(5 * 1024 * 1024 + 1) }) });
    expect(await big.ctx.http.fetch({ url: 'https://ca.example.com/der' })).toMatchObject({ body: 'MIL/', bodyEncoding: 'base64' });
    await expect(big.ctx.http.fetch({ url: 'https://ca.example.com/big' })).rejects.toThrow(CapabilityError);
    const offline = createTestHost({ plugin: probe(async () => failed), grants: { http: { hosts: ['ca.example.com'] } } });
    const err = await offline.ctx.http.fetch({ url: 'https://ca.example.com/' }).catch((e: Error) => e);
    expect(err).not.toBeInstanceOf(CapabilityError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('keeps a private key-value store with TTLs on the host clock', async () => {
    let now = 1_000_000;
    const host = createTestHost({ plugin: probe(async () => failed), grants: { kv: true }, kv: { seeded: 1 }, now: () => now });
    const { kv } = host.ctx;
    await kv.set('order/1', { id: 'o-1', tries: [1, 2] });
    await kv.set('order/2', 'short-lived', { ttlSeconds: 10 });
    expect(await kv.list('order/')).toEqual(['order/1', 'order/2']);
    expect(await kv.get('seeded')).toBe(1);
    now += 11_000;
    expect(await kv.get('order/2')).toBeUndefined();
    expect(await kv.list()).toEqual(['order/1', 'seeded']);
    await kv.delete('order/1');
    expect(await kv.get('order/1')).toBeUndefined();
    await expect(kv.set('', 1)).rejects.toThrow(/kv key must be a string of 1 to 256/);
    await expect(kv.set('k', new Date() as never)).rejects.toThrow(/Date object, not plain JSON/);
    await expect(kv.set('k', 'x'.repeat(70_000))).rejects.toThrow(/over the 65536-byte limit/);
    await expect(kv.set('k', 1, { ttlSeconds: -1 })).rejects.toThrow(/ttlSeconds/);

    // take: the value once, then nothing; increment: a counter whose first TTL holds.
    await kv.set('nonce', 'n-1');
    expect(await kv.take('nonce')).toBe('n-1');
    expect(await kv.take('nonce')).toBeUndefined();
    expect(await kv.increment('hits', { ttlSeconds: 10 })).toBe(1);
    now += 6_000;
    expect(await kv.increment('hits', { by: 2, ttlSeconds: 10 })).toBe(3);
    now += 5_000;
    expect(await kv.increment('hits')).toBe(1);
    await expect(kv.increment('hits', { by: 0.5 })).rejects.toThrow(/safe integer/);
  });

  it('gives secrets, logs, events, clock, and agent-side fs and exec within their grants', async () => {
    const host = createTestHost({
      plugin: probe(async () => failed), secrets: { token: 's3cret', 'account.password': 'pw' }, grants: { events: true, fs: { paths: ['/etc/ssl/certctl'] }, exec: { commands: ['/usr/sbin/nginx'] } },
      files: { '/etc/ssl/certctl/old.pem': 'OLD' }, exec: (command, args) => ({ exitCode: 0, stdout: `${command} ${args.join(' ')}`, stderr: '' }),
    });
    const { ctx } = host;
    expect(await ctx.secrets.get('token')).toBe('s3cret');
    expect(await ctx.secrets.get('account.password')).toBe('pw');
    expect(await ctx.secrets.get('other')).toBeUndefined();
    // deriveKey: stable per instance and label, another for another instance or label; labels checked.
    const key = await ctx.secrets.deriveKey('nonce');
    expect(Buffer.from(key, 'base64url')).toHaveLength(32);
    expect(await ctx.secrets.deriveKey('nonce')).toBe(key);
    expect(await ctx.secrets.deriveKey('other')).not.toBe(key);
    expect(await createTestHost({ plugin: probe(async () => failed), instanceId: 'other-instance' }).ctx.secrets.deriveKey('nonce')).not.toBe(key);
    await expect(ctx.secrets.deriveKey('')).rejects.toThrow(/printable ASCII/);
    await expect(ctx.secrets.deriveKey('a\nb')).rejects.toThrow(/printable ASCII/);
    ctx.log.info('hello', { n: 1 });
    expect(host.logs).toEqual([{ level: 'info', message: 'hello', fields: { n: 1 } }]);
    await ctx.events.emit('cert.issued', { id: 'mc-1' });
    await expect(ctx.events.emit('bad type!', {})).rejects.toThrow(/events\.emit type/);
    expect(host.events).toEqual([{ type: 'cert.issued', data: { id: 'mc-1' } }]);
    expect(ctx.clock.deadline()).toBeGreaterThan(ctx.clock.now());

    expect(await ctx.fs.read('/etc/ssl/certctl/old.pem')).toBe('OLD');
    await ctx.fs.write('/etc/ssl/certctl/new.pem', 'NEW');
    expect(host.files.get('/etc/ssl/certctl/new.pem')).toBe('NEW');
    await expect(ctx.fs.read('/etc/ssl/certctl/../../passwd')).rejects.toThrow(/must not contain "\.\."/);
    await expect(ctx.fs.write('/etc/ssl/certctl-evil/x', '')).rejects.toThrow(/outside the granted paths/);
    await expect(ctx.fs.read('relative.pem')).rejects.toThrow(/must be absolute/);
    await expect(ctx.fs.read('/etc/ssl/certctl/missing.pem')).rejects.toThrow(/ENOENT/);

    expect(await ctx.exec.run('/usr/sbin/nginx', ['-t'])).toMatchObject({ exitCode: 0, stdout: '/usr/sbin/nginx -t' });
    await expect(ctx.exec.run('nginx', ['-t'])).rejects.toThrow(/must be an absolute path/);
    await expect(ctx.exec.run('/bin/sh', ['-c', 'id'])).rejects.toThrow(/not among the granted commands/);
    await expect(ctx.exec.run('/usr/sbin/nginx', '-s reload' as never)).rejects.toThrow(/args must be an array/);
    expect(host.commands).toEqual([{ command: '/usr/sbin/nginx', args: ['-t'] }]);
  });

  it('runs a command with declared argument lists only with those arguments, as the agent does', async () => {
    const host = createTestHost({
      plugin: probe(async () => failed),
      grants: { exec: { commands: ['/usr/bin/systemctl'], args: { '/usr/bin/systemctl': [['reload', { regex: 'nginx|haproxy' }]] } } },
      exec: (command, args) => ({ exitCode: 0, stdout: `${command} ${args.join(' ')}`, stderr: '' }),
    });
    expect(await host.ctx.exec.run('/usr/bin/systemctl', ['reload', 'haproxy'])).toMatchObject({ exitCode: 0 });
    for (const args of [['stop', 'sshd'], ['reload', 'sshd'], ['reload', 'nginx', 'extra'], ['reload']]) {
      await expect(host.ctx.exec.run('/usr/bin/systemctl', args), args.join(' ')).rejects.toThrow(CapabilityError);
    }
    expect(host.commands).toEqual([{ command: '/usr/bin/systemctl', args: ['reload', 'haproxy'] }]);
  });
});

describe('createTestHost: calls as the host makes them', () => {
  it('passes JSON copies and a frozen config, and returns a checked copy', async () => {
    let seenCtx: PluginContext | null = null;
    const request = { certificateId: 'mc-1', nested: { a: 1 } };
    const host = createTestHost({
      config: { url: 'https://ca.example.com', nested: { x: 1 } },
      plugin: probe(async (ctx, req) => {
        seenCtx = ctx;
        (req.nested as Record<string, Json>).a = 2;
        return { status: 'pending', orderId: 'o-1', retryAfterSeconds: 5 };
      }),
    });
    expect(await host.call('issue', request)).toEqual({ status: 'pending', orderId: 'o-1', retryAfterSeconds: 5 });
    expect(request.nested.a).toBe(1);
    expect(Object.isFrozen(seenCtx!.config)).toBe(true);
    expect(() => { (seenCtx!.config.nested as Record<string, Json>).x = 2; }).toThrow(TypeError);
    await expect(host.call('issue', { when: new Date() } as never)).rejects.toThrow(TypeError);
  });

  it('reports failures with the kernel failure codes', async () => {
    const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: PluginCallFailure) => `${e.code}: ${e.message}`);
    const call = (act: Parameters<typeof probe>[0], method = 'issue', extra: { features?: string[]; timeoutMs?: number } = {}) => createTestHost({ plugin: probe(act), ...extra }).call(method, {});
    expect(await code(call(async () => { throw new Error('CA on fire'); }))).toMatch(/^plugin_error: .*CA on fire/);
    expect(await code(call(async () => { throw 'a string'; }))).toMatch(/^plugin_error: .*non-Error value: "a string"/);
    expect(await code(call(async () => ({ status: 'issued', certificatePem: 'x', chainPem: [], when: 1 })))).toMatch(/^bad_result: .*result\.when is not a field/);
    expect(await code(call(async () => ({ status: 'issued', certificatePem: 'x', chainPem: [new Date()] })))).toMatch(/^bad_result: .*Date object/);
    expect(await code(call(async () => ({ status: 'ok' })))).toMatch(/^bad_result: .*status must be one of issued, pending, failed, denied/);
    expect(await code(call(async () => failed, 'revoke'))).toMatch(/^not_supported: .*does not implement revoke/);
    expect(await code(call(async () => failed, 'deploy'))).toMatch(/^not_supported: .*issuer plugins have no method "deploy"/);
    const revoker = definePlugin({ kind: 'issuer', issue: async () => failed, revoke: async () => ({ status: 'revoked' }) } satisfies IssuerPlugin);
    expect(await code(createTestHost({ plugin: revoker, features: [] }).call('revoke', {}))).toMatch(/^not_supported: .*does not declare the "revoke" feature/);
    expect(await createTestHost({ plugin: revoker, features: ['revoke'] }).call('revoke', {})).toEqual({ status: 'revoked' });
    expect(await code(call(() => new Promise(() => {}), 'issue', { timeoutMs: 50 }))).toMatch(/^timeout: .*within 50 ms/);
  });
});

describe('createTestHost: sign orders', () => {
  const order = { status: 'sign', sign: { csrPem: 'CSR', notAfter: '2099-01-01T00:00:00Z' } } as const;
  const signed = { certificatePem: 'CERT', chainPem: ['CA'], serialNumberHex: '01', notBefore: '2026-01-01T00:00:00Z', notAfter: '2099-01-01T00:00:00Z', fingerprintSha256: 'ab' };

  it('signs a sign order with the fake CA as ctx.ca.sign would, and maps a refusal as the kernel does', async () => {
    const asked: unknown[] = [];
    const host = createTestHost({ plugin: probe(async () => order), grants: { ca: true }, ca: { ensure: async () => { throw new Error('unused'); }, sign: async (r) => { asked.push(r); return signed; } } });
    expect(await host.call('issue', {})).toEqual({ status: 'issued', certificatePem: 'CERT', chainPem: ['CA'] });
    expect(asked).toEqual([order.sign]);
    const refusing = createTestHost({ plugin: probe(async () => order), grants: { ca: true }, ca: { ensure: async () => { throw new Error('unused'); }, sign: async () => { throw Object.assign(new Error('notAfter is in the past'), { code: 'bad_request' }); } } });
    expect(await refusing.call('issue', {})).toEqual({ status: 'denied', reason: 'notAfter is in the past' });
  });

  it('refuses a sign order without the ca grant (capability_denied)', async () => {
    const err = await createTestHost({ plugin: probe(async () => order) }).call('issue', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginCallFailure);
    expect(err).toMatchObject({ code: 'capability_denied', message: expect.stringMatching(/capability ca/) });
  });
});
