import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../support/http.js';
import { freePort } from '../support/free-port.js';
import { spawnServe, type ServeProcess } from '../support/spawn-kernel.js';

/**
 * What `npm start` does on a fresh clone, exercised for real: the CLI process,
 * an on-disk PGlite in the data dir, a generated certificate, the initial admin key.
 */
describe('first start with nothing but Node', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-boot-'));
  let port: number;
  let serve: ServeProcess;
  let ca: string;
  let key: string;

  beforeAll(async () => {
    port = await freePort();
    serve = spawnServe({ CERTCTL_DATA_DIR: dataDir, CERTCTL_SERVER_PORT: String(port) });
    await serve.ready;
    ca = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    key = fs.readFileSync(path.join(dataDir, 'initial-admin-key'), 'utf8').trim();
  }, 120_000);
  afterAll(async () => {
    await serve?.stop('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the initial admin key once and stores it with mode 0600', () => {
    expect(key).toMatch(/^cctl_[A-Za-z0-9_-]{40,}$/);
    expect(serve.stdout()).toContain(key);
    expect(fs.statSync(path.join(dataDir, 'initial-admin-key')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dataDir, 'tls', 'server.key')).mode & 0o777).toBe(0o600);
    // The key never reaches the structured log lines.
    const logLines = serve.stdout().split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(2);
    expect(logLines.some((l) => l.includes(key))).toBe(false);
  });

  it('serves /health over TLS 1.3 with the generated certificate', async () => {
    const api = new ApiClient(`https://localhost:${port}`, ca);
    const res = await api.get('/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'healthy' });
    const proto = await new Promise<string | null>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => { resolve(s.getProtocol()); s.end(); });
      s.on('error', reject);
    });
    expect(proto).toBe('TLSv1.3');
    api.close();
  });

  it('refuses a TLS 1.2 handshake', async () => {
    const err = await new Promise<Error | null>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, maxVersion: 'TLSv1.2' }, () => { s.end(); resolve(null); });
      s.on('error', resolve);
    });
    expect(err).toBeInstanceOf(Error);
    expect(String(err?.message)).toMatch(/protocol|version|alert/i);
  });

  it('answers 401 with a JSON error without a key, and accepts the initial key', async () => {
    const anon = new ApiClient(`https://localhost:${port}`, ca);
    const denied = await anon.get('/api/v1/certificates');
    expect(denied.status).toBe(401);
    expect(denied.headers['content-type']).toMatch(/application\/json/);
    expect(denied.body.error.code).toBe('unauthenticated');
    const ok = await anon.get('/api/v1/certificates', { key });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ data: [], total: 0, page: 1 });
    anon.close();
  });

  it('stops cleanly on SIGTERM and restarts on the same data without a new key or certificate', async () => {
    expect(await serve.stop('SIGTERM')).toBe(0);
    const certBefore = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    serve = spawnServe({ CERTCTL_DATA_DIR: dataDir, CERTCTL_SERVER_PORT: String(port) });
    await serve.ready;
    expect(serve.stdout()).not.toContain('Initial admin API key');
    expect(serve.stdout()).toContain('schema up to date');
    expect(fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8')).toBe(certBefore);
    const api = new ApiClient(`https://localhost:${port}`, certBefore, key);
    expect((await api.get('/api/v1/auth/me')).status).toBe(200);
    api.close();
  }, 120_000);
});
