import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

describe.skipIf(POSTGRES_UNAVAILABLE)('HTTP core', () => {
  let t: TestKernel;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_CORS_ORIGINS: 'https://dash.example.com', CERTCTL_RATE_LIMIT_RPS: '1', CERTCTL_RATE_LIMIT_BURST: '10' } });
  });
  afterAll(async () => { await t?.stop(); });

  it('echoes a sane X-Request-ID and makes one otherwise', async () => {
    const given = await t.api.get('/health', { headers: { 'x-request-id': 'trace-abc.123' } });
    expect(given.headers['x-request-id']).toBe('trace-abc.123');
    const made = await t.api.get('/health', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('CORS: allowed origin gets the header and a cached preflight; others get nothing', async () => {
    const pre = await t.api.request('OPTIONS', '/api/v1/auth/me', { key: null, headers: { origin: 'https://dash.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('https://dash.example.com');
    expect(pre.headers['access-control-max-age']).toBe('600');
    const evil = await t.api.request('OPTIONS', '/api/v1/auth/me', { key: null, headers: { origin: 'https://evil.example.net', 'access-control-request-method': 'GET' } });
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    const get = await t.api.get('/api/v1/auth/me', { headers: { origin: 'https://evil.example.net' } });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('rate limits per client with 429 and Retry-After, leaving probes alone', async () => {
    // The bucket holds 10 and refills at 1/s: however slowly a busy machine serves n requests,
    // at most 10 + (seconds they took) get through, so the bound below holds without timing luck.
    // A key of its own, so the admin key's bucket stays full for the other tests; its first use
    // authenticates it (until then it counts against the address bucket like any unknown key).
    const mine = await t.keyWithRole('viewer');
    expect((await t.api.get('/api/v1/auth/me', { key: mine })).status).toBe(200);
    const burst = async (n: number, key: (i: number) => string) => {
      const t0 = Date.now();
      const results = await Promise.all(Array.from({ length: n }, (_, i) => t.api.get('/api/v1/auth/me', { key: key(i) })));
      const refilled = Math.ceil((Date.now() - t0) / 1000);
      return { limited: results.filter((r) => r.status === 429), atLeast: Math.max(1, n - 10 - refilled) };
    };
    const own = await burst(30, () => mine);
    expect(own.limited.length).toBeGreaterThanOrEqual(own.atLeast);
    expect(Number(own.limited[0].headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(own.limited[0].body.error.code).toBe('rate_limited');
    // Probes are exempt.
    expect((await t.api.get('/health', { key: null })).status).toBe(200);
    // Made-up keys share the caller's address bucket: rotating them buys nothing (one bucket of 10, not one each).
    const forged = await burst(20, (i) => `cctl_forged_${i}`);
    expect(forged.limited.length).toBeGreaterThanOrEqual(forged.atLeast);
    // A second's refill gives the key its next request.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await t.api.get('/api/v1/auth/me', { key: mine })).status).toBe(200);
  });

  it('protocol mounts (ACME, SCEP, EST) are limited per client address too, whatever credential they carry', async () => {
    // A flood of nonce requests or wrong SCEP challenges must not run unbounded: the protocol's own
    // Authorization headers (EST basic, made-up values) never buy a bucket, so all of them share the address's.
    const paths = ['/acme/new-nonce', '/scep?operation=GetCACaps', '/.well-known/est/cacerts'];
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => t.api.get(paths[i % 3], { key: null, headers: { authorization: `Basic ${Buffer.from(`u${i}:p`).toString('base64')}` } })));
    const refilled = Math.ceil((Date.now() - t0) / 1000);
    const limited = results.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(30 - 10 - refilled);
    expect(Number(limited[0].headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The tests below call without a key, from this address: a second's refill lets them in.
    await new Promise((r) => setTimeout(r, 1100));
  });

  it('unknown routes and methods get catalogued JSON errors', async () => {
    const missing = await t.api.get('/api/v1/no-such-thing');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('route_not_found');
    const method = await t.api.request('PATCH', '/health');
    expect(method.status).toBe(405);
    expect(method.body.error.code).toBe('method_not_allowed');
  });

  it('serves an OpenAPI 3.1 document that lists every route with its permission', async () => {
    const res = await t.api.get('/api/v1/openapi.json', { key: null });
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    for (const r of t.kernel.routes) {
      const op = res.body.paths[r.path.replace(/:([A-Za-z_]+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.path}`).toBeDefined();
      expect(op['x-certctl-permission']).toBe(r.access);
      if (r.body) expect(op.requestBody.content['application/json'].schema).toEqual(r.body);
    }
    const ids = Object.values(res.body.paths).flatMap((p: any) => Object.values(p).map((o: any) => o.operationId));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('CERTCTL_AUTH_TYPE=none', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel({ env: { CERTCTL_AUTH_TYPE: 'none' } }); });
  afterAll(async () => { await t?.stop(); });

  it('lets every caller in as an anonymous admin and says so', async () => {
    expect(t.kernel.initialAdminKey).toBeUndefined();
    const me = await t.api.get('/api/v1/auth/me', { key: null });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ actor: 'anonymous', auth_type: 'none' });
    expect((await t.api.get('/api/v1/auth/info', { key: null })).body.auth_type).toBe('none');
  });
});
