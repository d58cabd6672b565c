import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { freePort } from '../../support/free-port.js';

/** YYMMDDHHMMSSZ, the time format of openssl's index.txt. */
const indexTime = (d) => new Date(d).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';

/** openssl's index keys serials as BN_bn2hex prints them: upper case, whole bytes, no leading zero bytes. */
export const indexSerial = (hex) => {
  const s = hex.toUpperCase().replace(/^(00)+(?=..)/, '');
  return s.length % 2 ? `0${s}` : s;
};

/**
 * Writes an `openssl ca`-style index.txt: `good` serials as valid, `revoked` as
 * { serial, revokedAt, reason } (reason an openssl name, e.g. keyCompromise).
 */
export function writeIndex(file, { good, revoked, notAfter }) {
  const exp = indexTime(notAfter);
  const lines = [
    ...good.map((s) => `V\t${exp}\t\t${indexSerial(s)}\tunknown\t/CN=good`),
    ...revoked.map((r) => `R\t${exp}\t${indexTime(r.revokedAt)},${r.reason}\t${indexSerial(r.serial)}\tunknown\t/CN=revoked`),
  ];
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

/**
 * One OCSP request (POST with `body`, else GET) over a fresh connection with `Connection:
 * close` (openssl's responder spins on a kept-alive connection once the client closes it):
 * the DER body. For https URLs, `ca` is the certificate to trust.
 */
export function ocspOnce(url, body, { ca } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { connection: 'close', ...(body ? { 'content-type': 'application/ocsp-request', 'content-length': body.length } : {}) };
    const client = url.startsWith('https:') ? https : http;
    const req = client.request(url, { method: body ? 'POST' : 'GET', agent: false, headers, ...(ca ? { ca } : {}) }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`OCSP ${url} -> HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`OCSP ${url}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * `openssl ocsp -index ... -port` in `dir`. With `multi` > 1 it forks that many children
 * and makes itself a process group leader (setpgid; it exits if it cannot, so it must not
 * be spawned detached): stop() kills that group, else the one process. Ready once it has
 * answered `probeReq` (a complete request: a bare connect-and-close would hang it).
 */
export async function startOpensslResponder({ dir, index, caCert, rsigner, rkey, multi, probeReq }) {
  const port = await freePort();
  const args = ['ocsp', '-index', index, '-port', String(port), '-CA', caCert, '-rsigner', rsigner, '-rkey', rkey, '-nmin', '240', ...(multi > 1 ? ['-multi', String(multi)] : [])];
  const child = spawn('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => { stderr += c; });
  const stop = () => {
    for (const pid of multi > 1 ? [-child.pid, child.pid] : [child.pid]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  };
  const url = `http://127.0.0.1:${port}/`;
  const body = fs.readFileSync(path.join(dir, probeReq));
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    try {
      await ocspOnce(url, body);
      return { url, port, pid: child.pid, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  stop();
  throw new Error(`openssl ocsp responder did not answer: ${stderr.slice(-500)}`);
}
