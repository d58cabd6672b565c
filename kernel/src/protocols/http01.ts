import { lookup } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import type { Json } from '@certctl/sdk';
import { classifyAddress } from '@certctl/sdk/policy';

/*
 * ACME http-01 validation done by the kernel for protocol plugins (ctx.issuance.
 * checkHttp01): the plugin cannot reach arbitrary hosts with ctx.http, and should
 * not. The request is fixed in shape (plain HTTP GET of one token path on port 80
 * or an operator-chosen high port, no redirects, small body, short deadline), and
 * the answer is only "matched or not", so an ACME client cannot use it to read
 * internal services. Private and loopback addresses are allowed (internal PKI is
 * the point); cloud metadata, unspecified, multicast and broadcast never are.
 */

const TIMEOUT_MS = 10_000;
const MAX_BODY = 1024;
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
const HOST = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NEVER = new Set(['metadata', 'unspecified', 'multicast', 'broadcast', 'reserved']);

type Outcome = { ok: true } | { ok: false; reason: string };
type Parsed = { host: string; port: number; token: string; keyAuthorization: string };

function parse(raw: Json): Parsed | string {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return 'the request must be an object';
  const { host, port, token, keyAuthorization } = raw as Record<string, Json>;
  if (typeof host !== 'string' || host.length > 253 || !(net.isIP(host) || HOST.test(host))) return 'host must be a DNS name or an IP address';
  const p = port === undefined ? 80 : port;
  if (typeof p !== 'number' || !Number.isInteger(p) || !(p === 80 || (p >= 1024 && p <= 65535))) return 'port must be 80 or 1024-65535';
  if (typeof token !== 'string' || !TOKEN.test(token)) return 'token must be base64url';
  if (typeof keyAuthorization !== 'string' || !keyAuthorization.startsWith(`${token}.`) || keyAuthorization.length > 300) return 'keyAuthorization must be <token>.<thumbprint>';
  return { host, port: p, token, keyAuthorization };
}

export async function checkHttp01(raw: Json, deadline: number): Promise<Outcome | { problem: string }> {
  const req = parse(raw);
  if (typeof req === 'string') return { problem: req };
  let address: string;
  try {
    address = net.isIP(req.host) ? req.host : (await lookup(req.host, { verbatim: true })).address;
  } catch {
    return { ok: false, reason: `${req.host} does not resolve` };
  }
  const cls = classifyAddress(address);
  if (NEVER.has(cls)) return { ok: false, reason: `${req.host} resolves to a ${cls} address, which is never contacted` };
  const timeout = Math.max(500, Math.min(TIMEOUT_MS, deadline - Date.now() - 500));
  return new Promise<Outcome>((resolve) => {
    const hostHeader = net.isIPv6(req.host) ? `[${req.host}]` : req.host;
    // Connect to the address checked above (not a second lookup), with the name in Host.
    const r = http.get({ host: address, port: req.port, path: `/.well-known/acme-challenge/${req.token}`, headers: { Host: req.port === 80 ? hostHeader : `${hostHeader}:${req.port}`, 'User-Agent': 'certctl-acme-validator' }, timeout, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return resolve({ ok: false, reason: `GET of the challenge answered HTTP ${res.statusCode}` });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          r.destroy();
          resolve({ ok: false, reason: 'the challenge response is too large' });
        } else chunks.push(c);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8').trim();
        resolve(body === req.keyAuthorization ? { ok: true } : { ok: false, reason: 'the challenge response does not match the key authorization' });
      });
      res.on('error', () => resolve({ ok: false, reason: 'the challenge response was cut off' }));
    });
    r.on('timeout', () => {
      r.destroy();
      resolve({ ok: false, reason: `no answer from ${req.host}:${req.port} within ${timeout} ms` });
    });
    r.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, reason: `connecting to ${req.host}:${req.port} failed (${err.code ?? 'error'})` }));
  });
}
