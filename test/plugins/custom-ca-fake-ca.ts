import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import type { FakeHttpHandler } from '@certctl/sdk/testing';

const run = promisify(execFile);

/**
 * A small CA service speaking the custom-CA example's wire format (see
 * sdk/examples/custom-ca/src/ca-api.ts), signing with a throwaway CA through
 * openssl. Profiles steer it: `slow` answers 202 and signs on the first order
 * poll, `forbidden` answers 403. The same logic serves real HTTP on loopback
 * (`url`, for the kernel) and a test-host handler (`handler`, no socket).
 */
export interface FakeCa {
  url: string;
  caPem: string;
  caFile: string;
  dir: string;
  token: string;
  /** What the CA was asked, in order. */
  seen: { method: string; path: string; authorized: boolean; body: Record<string, unknown> | null }[];
  revoked: string[];
  handler: FakeHttpHandler;
  close(): Promise<void>;
}

interface Answer { status: number; body: unknown }

export async function startFakeCa(opts: { token: string; listen?: boolean }): Promise<FakeCa> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-fake-ca-'));
  const caFile = path.join(dir, 'ca.crt');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'ca.key'), '-out', caFile,
    '-subj', '/CN=certctl Fake Test CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const caPem = fs.readFileSync(caFile, 'utf8');
  const orders = new Map<string, string>();
  const ca: FakeCa = { url: '', caPem, caFile, dir, token: opts.token, seen: [], revoked: [], handler: null as never, close: async () => {} };

  const sign = async (csr: string): Promise<Answer> => {
    const name = crypto.randomBytes(6).toString('hex');
    const csrFile = path.join(dir, `${name}.csr`);
    const certFile = path.join(dir, `${name}.crt`);
    fs.writeFileSync(csrFile, csr);
    try {
      // openssl checks the CSR's self-signature and refuses damaged or tampered requests.
      await run('openssl', ['x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', path.join(dir, 'ca.key'), '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`,
        '-days', '1', '-copy_extensions', 'copy', '-out', certFile]);
      return { status: 200, body: { certificate: fs.readFileSync(certFile, 'utf8'), chain: [caPem] } };
    } catch (err) {
      return { status: 400, body: { error: `cannot sign this CSR: ${String((err as { stderr?: string }).stderr ?? err).split('\n')[0]}` } };
    }
  };

  const answer = async (method: string, url: string, authorization: string | undefined, text: string | undefined): Promise<Answer> => {
    const { pathname } = new URL(url, 'http://fake-ca');
    let body: Record<string, unknown> | null = null;
    try {
      body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
    } catch {
      body = null;
    }
    const authorized = authorization === `Bearer ${opts.token}`;
    ca.seen.push({ method, path: pathname, authorized, body });
    if (!authorized) return { status: 401, body: { error: 'bad or missing token' } };
    if (method === 'GET' && pathname === '/ca') return { status: 200, body: { chain: [caPem] } };
    if (method === 'POST' && pathname === '/sign') {
      if (typeof body?.csr !== 'string') return { status: 400, body: { error: 'csr is required' } };
      if (body.profile === 'forbidden') return { status: 403, body: { error: `policy forbids ${String(body.common_name)}` } };
      if (body.profile === 'slow') {
        const id = `ord-${crypto.randomBytes(4).toString('hex')}`;
        orders.set(id, body.csr);
        return { status: 202, body: { order_id: id, retry_after: 1 } };
      }
      return sign(body.csr);
    }
    const order = /^\/orders\/([\w-]+)$/.exec(pathname);
    if (method === 'GET' && order) {
      const csr = orders.get(order[1]);
      return csr ? sign(csr) : { status: 404, body: { error: 'no such order' } };
    }
    if (method === 'POST' && pathname === '/revoke' && typeof body?.serial === 'string') {
      ca.revoked.push(body.serial);
      return { status: 200, body: { revoked: body.serial } };
    }
    return { status: 404, body: { error: 'not found' } };
  };

  ca.handler = async (req) => {
    const header = Object.entries(req.headers).find(([k]) => k.toLowerCase() === 'authorization')?.[1];
    const a = await answer(req.method, req.url, header, req.body);
    return { status: a.status, body: a.body as never };
  };

  if (opts.listen !== false) {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void answer(req.method ?? 'GET', req.url ?? '/', req.headers.authorization, Buffer.concat(chunks).toString('utf8')).then((a) => {
          res.writeHead(a.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(a.body));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ca.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    ca.close = async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    };
  } else {
    ca.url = 'http://127.0.0.1:4710';
    ca.close = async () => fs.rmSync(dir, { recursive: true, force: true });
  }
  return ca;
}
