import crypto from 'node:crypto';
import https from 'node:https';
import path from 'node:path';
import { expect } from 'vitest';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/** A minimal hand-written ACME client for protocol-level tests (the real clients are certbot and lego). */
export class RawAcme {
  kid: string | null = null;
  private readonly agent: https.Agent;

  /** `key`: an ES256 key to sign with (the account's, or a certificate's for revocation); a new one by default. */
  constructor(readonly directoryUrl: string, ca: string, readonly key: crypto.KeyObject = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey) {
    this.agent = new https.Agent({ ca });
  }

  request(method: string, url: string, body?: string, contentType = 'application/jose+json'): Promise<{ status: number; headers: Record<string, string>; body: any; text: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, agent: this.agent, headers: body === undefined ? {} : { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try { parsed = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: parsed, text });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  async directory(): Promise<Record<string, string>> {
    return (await this.request('GET', this.directoryUrl)).body;
  }

  async nonce(): Promise<string> {
    const dir = await this.directory();
    return (await this.request('HEAD', dir.newNonce)).headers['replay-nonce'];
  }

  /** A flattened JWS; `override` replaces protected-header members (to break them on purpose). */
  jws(url: string, payload: unknown, nonce: string, override: Record<string, unknown> = {}, key: crypto.KeyObject = this.key): string {
    const jwk = crypto.createPublicKey(key).export({ format: 'jwk' });
    const header = { alg: 'ES256', nonce, url, ...(this.kid ? { kid: this.kid } : { jwk }), ...override };
    const prot = Buffer.from(JSON.stringify(header)).toString('base64url');
    const body = payload === '' ? '' : Buffer.from(JSON.stringify(payload)).toString('base64url');
    const signature = crypto.sign('sha256', Buffer.from(`${prot}.${body}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    return JSON.stringify({ protected: prot, payload: body, signature });
  }

  async post(url: string, payload: unknown, override: Record<string, unknown> = {}) {
    return this.request('POST', url, this.jws(url, payload, await this.nonce(), override));
  }

  async register(): Promise<string> {
    const dir = await this.directory();
    const res = await this.post(dir.newAccount, { termsOfServiceAgreed: true, contact: ['mailto:raw@acme.test'] });
    this.kid = res.headers.location;
    return this.kid;
  }
}

/**
 * A test kernel serving the ACME server plugin: a Local CA issuer `issuerId` and an
 * acme-server endpoint with `config` (its issuer_id filled in). `before` runs after the
 * issuer is made and before the endpoint (rows the endpoint's config names, e.g. profiles).
 */
export async function startAcmeServer(issuerId: string, config: Record<string, unknown>, before?: (t: TestKernel) => Promise<unknown>) {
  const t = await startTestKernel();
  expect((await t.api.post('/api/v1/issuers', { id: issuerId, name: 'ACME CA', type: 'local-ca', config: {} })).status).toBe(201);
  await before?.(t);
  const endpoint = await t.api.post('/api/v1/protocol-endpoints', { name: 'ACME', type: 'acme-server', config: { issuer_id: issuerId, ...config } });
  expect(endpoint.status, endpoint.text).toBe(201);
  const { chainPem } = (await t.kernel.pluginHost.call('local-ca', issuerId, 'getCaChain', {})) as { chainPem: string[] };
  return {
    t, endpoint, chainPem,
    /** The kernel's TLS certificate (trust anchor for its HTTPS listener), as a file. */
    cacert: path.join(t.dataDir, 'tls', 'server.crt'),
    directory: `${t.kernel.url}/acme/directory`,
  };
}
