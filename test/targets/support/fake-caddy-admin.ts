import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Caddy is not installed here, so the caddy target's api mode is tested against
 * this loopback stand-in for Caddy's admin API (https://caddyserver.com/docs/api).
 * It follows the documented behaviour the plugin relies on, as Caddy's own
 * admin.go implements it: the config tree under /config/[path] with GET, POST
 * (appends to an array, else sets), PUT (creates, 409 when present; makes missing
 * parents), PATCH (replaces, 404 when absent) and DELETE; objects tagged "@id"
 * reachable under /id/<id>, 404 for an unknown id; JSON bodies only; and every
 * change loaded as a whole new config, kept only if it loads: here each
 * apps.tls.certificates.load_pem entry must hold a parseable certificate and the
 * key that belongs to it, else 400 {"error": "loading new config: ..."} and the old
 * config stays.
 */
type Node = null | boolean | number | string | Node[] | { [k: string]: Node };

export interface FakeCaddyAdmin {
  url: string;
  /** The current config (a copy). */
  config(): Node;
  /** Mutating requests received (method and path). */
  changes: string[];
  /** When set, every change fails to load, as when Caddy cannot apply a config. */
  failLoads: boolean;
  close(): Promise<void>;
}

class ApiError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

function index(node: Node, at: string, out: Map<string, string>): void {
  if (Array.isArray(node)) node.forEach((v, i) => index(v, `${at}/${i}`, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '@id' && typeof v === 'string') out.set(v, at);
      else index(v, `${at}/${k}`, out);
    }
  }
}

function loadProblem(config: Node): string | null {
  const entries = (config as { apps?: { tls?: { certificates?: { load_pem?: Node } } } } | null)?.apps?.tls?.certificates?.load_pem;
  if (entries === undefined) return null;
  if (!Array.isArray(entries)) return 'json: cannot unmarshal object into Go value of type caddytls.PEMLoader';
  for (const [i, e] of entries.entries()) {
    const entry = e as { certificate?: unknown; key?: unknown };
    try {
      const cert = new crypto.X509Certificate(String(entry.certificate));
      if (!cert.checkPrivateKey(crypto.createPrivateKey(String(entry.key)))) return `PEM pair ${i}: tls: private key does not match public key`;
    } catch (err) {
      return `PEM pair ${i}: ${(err as Error).message}`;
    }
  }
  return null;
}

/** One access of the config tree, after Caddy's unsyncedConfigAccess. */
function access(root: { config: Node }, method: string, parts: string[], body: Node | undefined): Node | undefined {
  let ptr: Node = root as unknown as Node;
  const keys = ['config', ...parts];
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const last = i === keys.length - 1;
    if (Array.isArray(ptr)) {
      const idx = Number(key);
      if (!Number.isInteger(idx) || idx < 0 || idx >= ptr.length) throw new ApiError(400, `array index out of bounds: ${key}`);
      if (!last) { ptr = ptr[idx]; continue; }
      if (method === 'GET') return ptr[idx];
      if (method === 'PATCH' || method === 'POST') { ptr[idx] = body!; return undefined; }
      if (method === 'DELETE') { ptr.splice(idx, 1); return undefined; }
      throw new ApiError(400, `unsupported ${method} on an array element`);
    }
    if (!ptr || typeof ptr !== 'object') throw new ApiError(400, `invalid traversal path at: ${keys.slice(0, i + 1).join('/')}`);
    const obj = ptr as { [k: string]: Node };
    if (!last) {
      if ((obj[key] === undefined || obj[key] === null) && method === 'PUT') obj[key] = {};
      ptr = obj[key] ?? null;
      continue;
    }
    switch (method) {
      case 'GET': return obj[key] ?? null;
      case 'POST': if (Array.isArray(obj[key])) (obj[key] as Node[]).push(body!); else obj[key] = body!; return undefined;
      case 'PUT': if (key in obj) throw new ApiError(409, `key already exists: ${key}`); obj[key] = body!; return undefined;
      case 'PATCH': if (!(key in obj)) throw new ApiError(404, `key does not exist: ${key}`); obj[key] = body!; return undefined;
      case 'DELETE': if (!(key in obj)) throw new ApiError(404, `key does not exist: ${key}`); delete obj[key]; return undefined;
    }
  }
  throw new ApiError(405, 'method not allowed');
}

export async function startFakeCaddyAdmin(initial: Node = { apps: { http: { servers: {} } } }): Promise<FakeCaddyAdmin> {
  const state = { config: structuredClone(initial) as Node };
  const fake: Omit<FakeCaddyAdmin, 'url' | 'close'> = { config: () => structuredClone(state.config), changes: [], failLoads: false };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, value?: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(value === undefined ? '' : `${JSON.stringify(value)}\n`);
      };
      try {
        const method = req.method ?? 'GET';
        let pathname = new URL(req.url ?? '/', 'http://caddy').pathname;
        if (pathname.startsWith('/id/')) {
          const [id, ...rest] = pathname.slice(4).split('/').map(decodeURIComponent);
          const ids = new Map<string, string>();
          index(state.config, '/config', ids);
          const at = ids.get(id);
          if (!at) throw new ApiError(404, `unknown object ID '${id}'`);
          pathname = [at, ...rest].join('/');
        }
        if (!pathname.startsWith('/config/') && pathname !== '/config') throw new ApiError(404, 'not found');
        const parts = pathname.slice('/config'.length).split('/').filter(Boolean);
        const raw = Buffer.concat(chunks).toString('utf8');
        if (method !== 'GET') {
          if (!/\/json\b/.test(String(req.headers['content-type'] ?? '')) && raw) throw new ApiError(400, 'unacceptable content-type');
          fake.changes.push(`${method} ${req.url}`);
        }
        if (method === 'GET') return send(200, access(state, 'GET', parts, undefined) ?? null);
        const next = { config: structuredClone(state.config) };
        if (parts.length === 0) next.config = JSON.parse(raw);
        else access(next, method, parts, raw ? JSON.parse(raw) : undefined);
        const problem = fake.failLoads ? 'loading new config: tls: storage unavailable' : loadProblem(next.config);
        if (problem) throw new ApiError(400, problem.startsWith('loading') ? problem : `loading new config: ${problem}`);
        state.config = next.config;
        send(200);
      } catch (err) {
        send(err instanceof ApiError ? err.status : 400, { error: (err as Error).message });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(fake, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as FakeCaddyAdmin;
}
