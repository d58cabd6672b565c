import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { freePort } from '../../support/free-port.js';
import { makeCa, makeCsr, ssl } from './openssl.js';

/**
 * Pebble (Debian's `pebble`, Let's Encrypt's ACME test server) on loopback ports, in
 * `dir`: its own TLS certificate for 127.0.0.1 from a throw-away CA, its log in
 * pebble.log. `env` adds PEBBLE_* settings. Resolves once its directory answers.
 */
export async function startPebble(dir, env = {}) {
  const tlsCa = makeCa(dir, 'pebble bench TLS CA', { key: 'pebble-tls-ca.key', cert: 'pebble-tls-ca.pem' });
  makeCsr(dir, 'pebble-tls', '127.0.0.1');
  fs.writeFileSync(path.join(dir, 'pebble-tls.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  ssl(['x509', '-req', '-in', 'pebble-tls.csr', '-CA', 'pebble-tls-ca.pem', '-CAkey', 'pebble-tls-ca.key', '-set_serial', '0x1001', '-days', '7', '-extfile', 'pebble-tls.ext', '-out', 'pebble-tls.pem'], dir);
  const [port, mgmt, httpPort, tlsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${port}`, managementListenAddress: `127.0.0.1:${mgmt}`,
      certificate: path.join(dir, 'pebble-tls.pem'), privateKey: path.join(dir, 'pebble-tls.key'),
      httpPort, tlsPort, ocspResponderURL: '', externalAccountBindingRequired: false,
    },
  };
  fs.writeFileSync(path.join(dir, 'pebble.json'), JSON.stringify(config));
  const log = fs.openSync(path.join(dir, 'pebble.log'), 'a');
  const child = spawn('pebble', ['-config', path.join(dir, 'pebble.json')], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  const directoryUrl = `https://127.0.0.1:${port}/dir`;
  const answers = () => new Promise((resolve) => {
    https.get(directoryUrl, { ca: tlsCa.certPem, agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); }).on('error', () => resolve(false));
  });
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    if (await answers()) return { directoryUrl, ca: tlsCa.certPem, pid: child.pid, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  stop();
  throw new Error(`pebble did not start: ${fs.readFileSync(path.join(dir, 'pebble.log'), 'utf8').slice(-1000)}`);
}
