import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isReservedPath, staticWeb } from './static-web.js';

describe('static dashboard serving', () => {
  let dir: string;
  let server: http.Server;
  let base: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-web-'));
    fs.mkdirSync(path.join(dir, 'assets'));
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>app</title>');
    fs.writeFileSync(path.join(dir, 'assets', 'app-123.js'), 'console.log(1)');
    fs.writeFileSync(path.join(os.tmpdir(), 'certctl-outside.txt'), 'secret');
    const app = new Koa();
    app.use(staticWeb(dir) as unknown as Koa.Middleware);
    app.use((ctx) => { ctx.status = 404; ctx.body = { error: { code: 'route_not_found' } }; });
    server = http.createServer(app.callback());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = (p: string, accept = 'text/html') => fetch(base + p, { headers: { accept } });

  it('serves index.html at / and for deep links, with a CSP', async () => {
    for (const p of ['/', '/certificates/mc-1', '/jobs']) {
      const res = await get(p);
      expect(res.status, p).toBe(200);
      expect(await res.text()).toContain('<title>app</title>');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(res.headers.get('cache-control')).toBe('no-cache');
    }
  });

  it('serves hashed assets as immutable', async () => {
    const res = await get('/assets/app-123.js', '*/*');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/javascript');
    expect(res.headers.get('cache-control')).toContain('immutable');
  });

  it('never answers for API and protocol paths, missing files or paths outside the build', async () => {
    for (const p of ['/api/v1/nope', '/api', '/.well-known/est/cacerts', '/acme/directory', '/scep', '/cmp', '/cmp/p/x', '/.well-known/cmp', '/health', '/ready', '/assets/missing.js', '/../certctl-outside.txt', '/%2e%2e/certctl-outside.txt']) {
      const res = await get(p);
      expect(res.status, p).toBe(404);
      expect(await res.text(), p).toContain('route_not_found');
    }
    expect((await get('/certificates', 'application/json')).status).toBe(404);
  });

  it('falls through to the router when the build changes under it, never a bare 500', async () => {
    // A rebuild replaces the files the server indexed at start: the indexed index.html is gone.
    fs.renameSync(path.join(dir, 'index.html'), path.join(dir, 'index.old'));
    try {
      const res = await get('/jobs');
      expect(res.status).toBe(404);
      expect(await res.text()).toContain('route_not_found');
    } finally {
      fs.renameSync(path.join(dir, 'index.old'), path.join(dir, 'index.html'));
    }
    // Indexed again on the next request: the new build is served.
    expect((await get('/jobs')).status).toBe(200);
  });

  it('knows the reserved prefixes', () => {
    expect(isReservedPath('/api/v1/certificates')).toBe(true);
    expect(isReservedPath('/apiary')).toBe(false);
    expect(isReservedPath('/.well-known/pki/crl')).toBe(true);
  });
});
