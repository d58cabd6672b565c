import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A wrk Lua script: the method and body (read from `bodyFile`), and with `close` a
 * `Connection: close` header so every request opens a new connection (for servers
 * without HTTP keep-alive, and for comparing with them on equal terms).
 *
 * The script also replaces wrk.resolve: wrk's own opens and closes one connection per
 * address before the run to check it is reachable; `openssl ocsp -port` (3.0) then
 * spins on that empty connection forever and answers nobody
 * (https://github.com/openssl/openssl/issues/31129). Only the lookup is kept.
 */
export function wrkScript(dir, name, { method = 'GET', bodyFile = null, contentType = null, close = false } = {}) {
  const file = path.join(dir, `${name}.lua`);
  const lines = [`wrk.method = "${method}"`];
  if (bodyFile) lines.push(`local f = io.open("${bodyFile}", "rb")`, 'wrk.body = f:read("*all")', 'f:close()');
  if (contentType) lines.push(`wrk.headers["Content-Type"] = "${contentType}"`);
  if (close) lines.push('wrk.headers["Connection"] = "close"');
  lines.push('function wrk.resolve(host, service) wrk.addrs = wrk.lookup(host, service) end');
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/**
 * Runs wrk --latency against `url`: requests/s, p50 and p99 (ms), the number of
 * requests, and errors (non-2xx answers plus socket errors). Asynchronous, so a server
 * in this process keeps answering while it runs.
 */
export async function wrk(url, { duration, connections, script }) {
  const threads = Math.max(1, Math.min(2, (os.availableParallelism?.() ?? 2) - 1));
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${duration}s`, '--latency', '-s', script, url];
  const out = await new Promise((resolve, reject) => {
    execFile('wrk', args, { encoding: 'utf8', maxBuffer: 1 << 22 }, (err, stdout, stderr) => (err ? reject(new Error(`wrk failed: ${stderr}`)) : resolve(stdout)));
  });
  const ms = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)\\b`).exec(out);
    return m ? Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 })[m[2]] : NaN;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + (socket ? socket.slice(1).reduce((a, n) => a + Number(n), 0) : 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
    p50: ms(50),
    p99: ms(99),
    errors,
  };
}
