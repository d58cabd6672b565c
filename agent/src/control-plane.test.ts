import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlaneClient, ServerRefused, ServerUnavailable, trustAgent } from './control-plane.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-cp-'));
const certPath = path.join(tmp, 'server.crt');
const keyPath = path.join(tmp, 'server.key');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-out', certPath, '-subj', '/CN=localhost', '-days', '2', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
const cert = fs.readFileSync(certPath, 'utf8');
const pin = crypto.createHash('sha256').update(new crypto.X509Certificate(cert).raw).digest('hex');

describe('control plane client', () => {
  const seen: { path: string; auth?: string }[] = [];
  let server: https.Server;
  let base: string;
  beforeAll(async () => {
    server = https.createServer({ cert, key: fs.readFileSync(keyPath) }, (req, res) => {
      seen.push({ path: req.url ?? '', auth: req.headers.authorization });
      const status = req.url === '/busy' ? 503 : req.url === '/nope' ? 403 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status === 200 ? { ok: true } : { error: { code: status === 403 ? 'FORBIDDEN' : 'UNAVAILABLE', message: 'no' } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `https://localhost:${(server.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('trusts a CA file, or exactly the pinned certificate', async () => {
    const viaCa = new ControlPlaneClient(base, trustAgent({ mode: 'ca-file', caFile: certPath }));
    expect(await viaCa.request({ method: 'GET', path: '/ok', bearer: 'k1' })).toEqual({ ok: true });
    viaCa.close();
    const pinned = new ControlPlaneClient(base.replace('localhost', '127.0.0.1'), trustAgent({ mode: 'pinned', sha256: pin }));
    expect(await pinned.request({ method: 'GET', path: '/ok' })).toEqual({ ok: true });
    pinned.close();
    expect(seen.map((s) => s.path)).toEqual(['/ok', '/ok']);
    expect(seen[0].auth).toBe('Bearer k1');
  });

  it('sends nothing to a server that is not the pinned or trusted one', async () => {
    const before = seen.length;
    const wrongPin = new ControlPlaneClient(base, trustAgent({ mode: 'pinned', sha256: 'ab'.repeat(32) }));
    const err = await wrongPin.request({ method: 'POST', path: '/secret', bearer: 'agent-key', body: { x: 1 } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ServerUnavailable);
    expect((err as Error).message).toMatch(/not the pinned one/);
    wrongPin.close();
    const system = new ControlPlaneClient(base, trustAgent({ mode: 'system' }));
    await expect(system.request({ method: 'GET', path: '/secret', bearer: 'agent-key' })).rejects.toThrow(/self-signed|SELF_SIGNED/i);
    system.close();
    expect(seen.length).toBe(before);
    expect(() => trustAgent({ mode: 'ca-file', caFile: path.join(tmp, 'missing.pem') })).toThrow(/cannot be read/);
  });

  it('tells "try later" (5xx, refused connection) from "no" (4xx)', async () => {
    const c = new ControlPlaneClient(base, trustAgent({ mode: 'ca-file', caFile: certPath }));
    await expect(c.request({ method: 'GET', path: '/busy' })).rejects.toBeInstanceOf(ServerUnavailable);
    const no = await c.request({ method: 'GET', path: '/nope' }).catch((e: unknown) => e);
    expect(no).toBeInstanceOf(ServerRefused);
    expect(no).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    c.close();
    const down = new ControlPlaneClient('https://127.0.0.1:1', trustAgent({ mode: 'system' }));
    await expect(down.request({ method: 'GET', path: '/x' })).rejects.toThrow(/ECONNREFUSED/);
    down.close();
  });
});
