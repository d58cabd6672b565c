import crypto from 'node:crypto';
import https from 'node:https';
import type net from 'node:net';

/**
 * Test-only: Debian's Pebble (2.4) predates ACME Renewal Information, so tests put
 * this HTTPS pass-through in front of it. It forwards every request with its Host
 * header unchanged (Pebble builds its URLs and checks JWS `url`s from that header,
 * so the whole conversation flows through the shim), adds `renewalInfo` to the
 * directory, and answers GET /renewal-info/{certID} (RFC 9773) from the
 * certificate Pebble's management interface reports: the window sits at two thirds
 * of the lifetime unless a test sets `window`. It records newOrder payloads so a
 * test can see the `replaces` and `profile` fields; it can also list ACME profiles
 * in the directory, which Pebble 2.4 ignores when ordering.
 */
export interface AriShim {
  origin: string;
  /** newOrder payloads seen, in order. */
  orders: Record<string, unknown>[];
  /** renewalInfo requests seen (cert IDs). */
  lookups: string[];
  /** Forces the suggested window (e.g. "renew now"); null for the computed one. */
  window: { start: string; end: string } | null;
  /** ACME profiles to list in the directory's meta (Pebble 2.4 has none); null for none. */
  profiles: Record<string, string> | null;
  stop(): Promise<void>;
}

interface ShimOptions {
  upstream: string;
  tls: { caPem: string; certPem: string; keyPem: string };
  management: (pathname: string) => Promise<{ status: number; body: string }>;
}

const readBody = (req: NodeJS.ReadableStream): Promise<Buffer> => new Promise((resolve, reject) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => resolve(Buffer.concat(chunks)));
  req.on('error', reject);
});

export async function startAriShim(opts: ShimOptions): Promise<AriShim> {
  const up = new URL(opts.upstream);
  const shim: AriShim = { origin: '', orders: [], lookups: [], window: null, profiles: null, stop: async () => {} };

  const forward = (method: string, path: string, headers: Record<string, string | string[] | undefined>, body: Buffer) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      const r = https.request({ host: up.hostname, port: up.port, method, path, headers, ca: opts.tls.caPem, agent: false }, (res) => {
        readBody(res).then((b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }), reject);
      });
      r.on('error', reject);
      r.end(body.length ? body : undefined);
    });

  async function renewalInfo(certId: string): Promise<{ status: number; body: unknown }> {
    shim.lookups.push(certId);
    const serialB64 = certId.split('.')[1] ?? '';
    const serialHex = Buffer.from(serialB64, 'base64url').toString('hex').replace(/^0+/, '');
    const status = await opts.management(`/cert-status-by-serial/${serialHex}`);
    if (status.status !== 200) return { status: 404, body: { type: 'urn:ietf:params:acme:error:malformed', detail: 'unknown certificate' } };
    const cert = new crypto.X509Certificate(JSON.parse(status.body).Certificate as string);
    const from = Date.parse(cert.validFrom);
    const life = Date.parse(cert.validTo) - from;
    const start = from + (life * 2) / 3;
    const window = shim.window ?? { start: new Date(start).toISOString(), end: new Date(start + life / 6).toISOString() };
    return { status: 200, body: { suggestedWindow: window, explanationURL: `${shim.origin}/why` } };
  }

  const server = https.createServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, (req, res) => {
    void (async () => {
      const body = await readBody(req);
      const path = req.url ?? '/';
      const ri = /^\/renewal-info\/([A-Za-z0-9_.-]+)$/.exec(path);
      if (req.method === 'GET' && ri) {
        const out = await renewalInfo(ri[1]);
        res.writeHead(out.status, { 'content-type': out.status === 200 ? 'application/json' : 'application/problem+json', 'retry-after': '21600' }).end(JSON.stringify(out.body));
        return;
      }
      if (req.method === 'POST' && body.length) {
        try {
          const jws = JSON.parse(body.toString('utf8')) as { payload?: string };
          const payload = jws.payload ? JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) : null;
          if (payload && Array.isArray(payload.identifiers)) shim.orders.push(payload);
        } catch { /* not JSON: pass it on, Pebble will say so */ }
      }
      const out = await forward(req.method ?? 'GET', path, req.headers, body);
      if (req.method === 'GET' && path === '/dir' && out.status === 200) {
        const dir = JSON.parse(out.body.toString('utf8'));
        dir.renewalInfo = `${shim.origin}/renewal-info`;
        if (shim.profiles) dir.meta = { ...dir.meta, profiles: shim.profiles };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(dir));
        return;
      }
      const headers = { ...out.headers };
      delete headers['transfer-encoding'];
      delete headers['content-length'];
      res.writeHead(out.status, headers).end(out.body);
    })().catch((err) => res.writeHead(502, { 'content-type': 'text/plain' }).end(String(err)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  shim.origin = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  shim.stop = () => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  return shim;
}
