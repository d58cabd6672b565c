import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

describe.skipIf(POSTGRES_UNAVAILABLE)('HTTP core', () => {
  let t: TestKernel;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_CORS_ORIGINS: 'https://dash.example.com', CERTCTL_RATE_LIMIT_RPS: '5', CERTCTL_RATE_LIMIT_BURST: '10' } });
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
    const results = await Promise.all(Array.from({ length: 30 }, () => t.api.get('/api/v1/auth/me')));
    const limited = results.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(10);
    expect(Number(limited[0].headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited[0].body.error.code).toBe('rate_limited');
    // Probes are exempt.
    expect((await t.api.get('/health', { key: null })).status).toBe(200);
    // Made-up keys share the caller's address bucket: rotating them buys nothing.
    const forged = await Promise.all(Array.from({ length: 15 }, (_, i) => t.api.get('/api/v1/auth/me', { key: `cctl_forged_${i}` })));
    expect(forged.filter((r) => r.status === 429).length).toBeGreaterThan(3);
    await new Promise((r) => setTimeout(r, 2100));
    expect((await t.api.get('/api/v1/auth/me')).status).toBe(200);
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
