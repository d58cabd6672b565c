import http from 'node:http';
import net from 'node:net';
import type { Json } from '@certctl/sdk';
import { failure, type Outcome } from './acme-resolve.js';
import { parseTarget, validateAtAddresses, type Target } from './acme-validation-request.js';

/*
 * ACME http-01 validation done by the kernel for protocol plugins (ctx.issuance.
 * checkHttp01): the plugin cannot reach arbitrary hosts with ctx.http, and should
 * not. The request is fixed in shape (plain HTTP GET of one token path on port 80
 * or an operator-chosen high port, no redirects, small body, short deadline), and
 * the answer is only "matched or not", so an ACME client cannot use it to read
 * internal services. Private and loopback addresses are allowed (internal PKI is
 * the point); cloud metadata, unspecified, multicast and broadcast never are
 * (acme-resolve.ts, which also picks the DNS servers).
 */

const MAX_BODY = 1024;
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

type Parsed = Target & { token: string };

function parse(raw: Json): Parsed | string {
  const parsed = parseTarget(raw, 80);
  if (typeof parsed === 'string') return parsed;
  const { token } = parsed.fields;
  if (typeof token !== 'string' || !TOKEN.test(token)) return 'token must be base64url';
  if (!parsed.target.keyAuthorization.startsWith(`${token}.`)) return 'keyAuthorization must be <token>.<thumbprint>';
  return { ...parsed.target, token };
}

export async function checkHttp01(raw: Json, deadline: number): Promise<Outcome | { problem: string }> {
  const req = parse(raw);
  if (typeof req === 'string') return { problem: req };
  return validateAtAddresses(req, deadline, (address, timeout) => fetchAnswer(req, address, timeout));
}

/** One GET of the token path at a pinned address, with the name in Host. */
function fetchAnswer(req: Parsed, address: string, timeout: number): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const hostHeader = net.isIPv6(req.host) ? `[${req.host}]` : req.host;
    const r = http.get({ host: address, port: req.port, path: `/.well-known/acme-challenge/${req.token}`, headers: { Host: req.port === 80 ? hostHeader : `${hostHeader}:${req.port}`, 'User-Agent': 'certctl-acme-validator' }, timeout, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return resolve(failure('incorrectResponse', `GET of the challenge answered HTTP ${res.statusCode}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          r.destroy();
          resolve(failure('incorrectResponse', 'the challenge response is too large'));
        } else chunks.push(c);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8').trim();
        resolve(body === req.keyAuthorization ? { ok: true } : failure('incorrectResponse', 'the challenge response does not match the key authorization'));
      });
      res.on('error', () => resolve(failure('connection', 'the challenge response was cut off')));
    });
    r.on('timeout', () => {
      r.destroy();
      resolve(failure('connection', `no answer from ${req.host}:${req.port} within ${timeout} ms`));
    });
    r.on('error', (err: NodeJS.ErrnoException) => resolve(failure('connection', `connecting to ${req.host}:${req.port} (${address}) failed (${err.code ?? 'error'})`)));
  });
}
