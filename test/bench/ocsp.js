// `npm run bench -- ocsp [--duration 10] [--connections 64] [--revoked 10000]`
//
// OCSP responses/s and p99 under wrk on loopback, in the same run:
//   ours, through the kernel's HTTPS listener (TLS 1.3) and through the same PKI
//   handler on plain HTTP (how relying parties usually reach OCSP), for
//     - pre-signed answers to GET (RFC 6960 A.1 base64 path) and POST requests
//       without a nonce (served from the cache of signed answers), and
//     - live-signed answers to POST requests carrying a nonce (signed per request
//       in the crypto pool, the nonce echoed);
//   `openssl ocsp -index ... -port -multi <CPUs>` (plain HTTP) answering the same
//   POST requests for the same serials (statuses in its index), signing each one.
// The CA holds --revoked revoked serials besides the good one asked about.
// One JSON line per figure on stdout; progress and the kernel's warnings on stderr.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig, startKernel } from '../../kernel/dist/index.js';
import { pkiRequestHandler } from '../../kernel/dist/revocation/index.js';
import { freePort } from '../support/free-port.js';
import { apiClient } from './lib/https-client.js';
import { emit, note } from './lib/measure.js';
import { makeCa, makeCsr, ssl } from './lib/openssl.js';

/** wrk with --latency: requests/s, p99 (ms) and non-2xx count. Async: our server answers from this process. */
async function wrk(url, { duration, connections, script }) {
  const threads = Math.max(1, Math.min(2, (os.availableParallelism?.() ?? 2) - 1));
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${duration}s`, '--latency', ...(script ? ['-s', script] : []), url];
  const out = await new Promise((resolve, reject) => {
    execFile('wrk', args, { encoding: 'utf8', maxBuffer: 1 << 22 }, (err, stdout, stderr) => (err ? reject(new Error(`wrk failed: ${stderr}`)) : resolve(stdout)));
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const m = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99 = m ? Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 })[m[2]] : NaN;
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(out)?.[1] ?? 0);
  return { rps, p99, errors };
}

function postScript(dir, name, bodyFile) {
  const file = path.join(dir, `${name}.lua`);
  fs.writeFileSync(file, `local f = io.open("${bodyFile}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*all")\nf:close()\nwrk.headers["Content-Type"] = "application/ocsp-request"\n`);
  return file;
}

/** Checks one answer with openssl before measuring, so the figures are for correct responses. */
function checkAnswer(dir, der, caFile, certFile, reqFile) {
  const resp = path.join(dir, `check-${crypto.randomBytes(3).toString('hex')}.der`);
  fs.writeFileSync(resp, der);
  // With -reqin the request (and its nonce) is the one sent; -cert would build a new one.
  const ask = reqFile ? ['-reqin', reqFile, '-resp_text'] : ['-cert', certFile, '-no_nonce'];
  const out = execFileSync('openssl', ['ocsp', '-respin', resp, '-CAfile', caFile, '-issuer', caFile, ...ask], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (!(reqFile ? /Cert Status: good/.test(out) : out.includes(': good'))) throw new Error(`unexpected OCSP answer: ${out}`);
}

function stopResponder(child) {
  spawnSync('pkill', ['-KILL', '-P', String(child.pid)]);
  child.kill('SIGKILL');
}

async function fetchBytes(url, init) {
  const res = await fetch(url, init);
  return Buffer.from(await res.arrayBuffer());
}

export async function run(args) {
  const { values } = parseArgs({ args, options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '64' }, revoked: { type: 'string', default: '10000' } } });
  const duration = Number(values.duration);
  const connections = Number(values.connections);
  const revokedCount = Number(values.revoked);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-bench-ocsp-'));
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  let kernel = null;
  let plain = null;
  let responder = null;
  try {
    const config = loadConfig({
      CERTCTL_DATA_DIR: dataDir, CERTCTL_SERVER_HOST: '127.0.0.1', CERTCTL_SERVER_PORT: '0', CERTCTL_LOG_LEVEL: 'warn',
      CERTCTL_RATE_LIMIT_ENABLED: 'false', CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_CONFIG_ENCRYPTION_KEY: 'certctl-bench-passphrase',
      CERTCTL_PKI_RATE_LIMIT_RPS: '10000000', CERTCTL_PKI_RATE_LIMIT_BURST: '100000000',
    });
    note('starting a kernel (embedded PGlite) with a Local CA issuer');
    kernel = await startKernel(config, { log: pino({ level: 'warn' }, pino.destination(2)) });
    const ca = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    const client = apiClient({ baseUrl: kernel.url, ca, key: kernel.initialAdminKey });
    await client.request('POST', '/api/v1/issuers', { body: { id: 'iss-bench', name: 'iss-bench', type: 'local-ca', config: {} } }).finally(() => client.close());
    const issued = await kernel.pluginHost.call('local-ca', 'iss-bench', 'issue', {
      certificateId: 'mc-ocsp-bench', csrPem: makeCsr(dir, 'leaf', 'ocsp-bench.example.test'), commonName: 'ocsp-bench.example.test', sans: [],
      profile: { id: null, maxTtlSeconds: null, ekus: ['serverAuth'] },
    });
    const leaf = new crypto.X509Certificate(issued.certificatePem);
    const serial = leaf.serialNumber.toLowerCase();
    const knex = kernel.db.knex;
    await knex('managed_certificates').insert({ id: 'mc-ocsp-bench', name: 'b', common_name: 'ocsp-bench.example.test', status: 'Active', issuer_id: 'iss-bench', serial_number: serial, not_before: new Date(leaf.validFrom), expires_at: new Date(leaf.validTo) });
    await knex('certificate_versions').insert({ id: 'cv-ocsp-bench', certificate_id: 'mc-ocsp-bench', serial_number: serial, fingerprint_sha256: 'x', not_before: new Date(leaf.validFrom), not_after: new Date(leaf.validTo), pem_chain: issued.certificatePem });
    const caRow = await knex('certificate_authorities').where({ issuer_id: 'iss-bench', status: 'active' }).first();
    const revokedSerials = Array.from({ length: revokedCount }, (_, i) => crypto.createHash('sha256').update(`rev-${i}`).digest('hex').slice(0, 32).replace(/^./, '5'));
    for (let i = 0; i < revokedSerials.length; i += 1000) {
      await knex('certificate_revocations').insert(revokedSerials.slice(i, i + 1000).map((s, j) => ({
        id: `rev-bench-${i + j}`, issuer_id: 'iss-bench', ca_id: caRow.id, serial_number: s, reason: 'keyCompromise', reason_code: 1,
        revoked_at: new Date(), revoked_by: 'bench', not_after: new Date(Date.now() + 86_400_000),
      })));
    }
    const caFile = path.join(dir, 'ca.pem');
    const certFile = path.join(dir, 'leaf.pem');
    fs.writeFileSync(caFile, issued.chainPem[0]);
    fs.writeFileSync(certFile, issued.certificatePem);
    ssl(['ocsp', '-issuer', caFile, '-cert', certFile, '-no_nonce', '-reqout', 'plain.req'], dir);
    ssl(['ocsp', '-issuer', caFile, '-cert', certFile, '-reqout', 'nonce.req'], dir);
    const plainReq = fs.readFileSync(path.join(dir, 'plain.req'));
    const getPath = `/.well-known/pki/ocsp/iss-bench/${encodeURIComponent(plainReq.toString('base64'))}`;
    const postPath = '/.well-known/pki/ocsp/iss-bench';

    plain = http.createServer(pkiRequestHandler(kernel, (_q, s) => { s.statusCode = 404; s.end(); }));
    plain.keepAliveTimeout = 65_000;
    await new Promise((r) => plain.listen(0, '127.0.0.1', r));
    const httpBase = `http://127.0.0.1:${plain.address().port}`;
    const httpsBase = kernel.url.replace('localhost', '127.0.0.1');

    // Warm up and check: the first GET signs, the rest are the cached answer; the nonce POST signs each time.
    checkAnswer(dir, await fetchBytes(`${httpBase}${getPath}`), caFile, certFile);
    checkAnswer(dir, await fetchBytes(`${httpBase}${postPath}`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: fs.readFileSync(path.join(dir, 'nonce.req')) }), caFile, certFile, path.join(dir, 'nonce.req'));
    const postPlain = postScript(dir, 'post-plain', path.join(dir, 'plain.req'));
    const postNonce = postScript(dir, 'post-nonce', path.join(dir, 'nonce.req'));

    const scenarios = [
      ['ours.http.get_presigned', `${httpBase}${getPath}`, null],
      ['ours.http.post_presigned', `${httpBase}${postPath}`, postPlain],
      ['ours.http.post_nonce_live', `${httpBase}${postPath}`, postNonce],
      ['ours.https.get_presigned', `${httpsBase}${getPath}`, null],
      ['ours.https.post_presigned', `${httpsBase}${postPath}`, postPlain],
      ['ours.https.post_nonce_live', `${httpsBase}${postPath}`, postNonce],
    ];
    for (const [name, url, script] of scenarios) {
      note(`wrk ${name}`);
      const r = await wrk(url, { duration, connections, script });
      emit({ name: `ocsp.${name}.rps`, value: r.rps, unit: 'req/s', connections });
      emit({ name: `ocsp.${name}.p99`, value: r.p99, unit: 'ms', connections });
      if (r.errors) emit({ name: `ocsp.${name}.errors`, value: r.errors, unit: 'responses' });
    }

    // openssl's responder on the same statuses: the good serial and the revoked ones, own delegated signer.
    makeCa(dir, 'openssl bench CA', { key: 'oca.key', cert: 'oca.pem' });
    makeCsr(dir, 'ors', 'openssl bench responder');
    fs.writeFileSync(path.join(dir, 'ors.ext'), 'extendedKeyUsage=OCSPSigning\nnoCheck=ignored\nkeyUsage=critical,digitalSignature\n');
    ssl(['x509', '-req', '-in', 'ors.csr', '-CA', 'oca.pem', '-CAkey', 'oca.key', '-set_serial', '0x2a', '-days', '30', '-extfile', 'ors.ext', '-out', 'ors.pem'], dir);
    const exp = '491231235959Z';
    const lines = [`V\t${exp}\t\t${serial.toUpperCase()}\tunknown\t/CN=ocsp-bench.example.test`, ...revokedSerials.map((s) => `R\t${exp}\t260101000000Z,keyCompromise\t${s.toUpperCase()}\tunknown\t/CN=r`)];
    fs.writeFileSync(path.join(dir, 'index.txt'), `${lines.join('\n')}\n`);
    ssl(['ocsp', '-issuer', 'oca.pem', '-serial', `0x${serial}`, '-no_nonce', '-reqout', 'ossl-plain.req'], dir);
    ssl(['ocsp', '-issuer', 'oca.pem', '-serial', `0x${serial}`, '-reqout', 'ossl-nonce.req'], dir);
    const multi = os.availableParallelism?.() ?? 2;
    for (const [name, req] of [['openssl.http.post_presigned_equivalent', 'ossl-plain.req'], ['openssl.http.post_nonce_live', 'ossl-nonce.req']]) {
      // A fresh responder per scenario, -multi (its single-process mode answers nothing under wrk); its
      // children are killed by parent id afterwards (they keep spinning when only the parent is stopped).
      const port = await freePort();
      responder = spawn('openssl', ['ocsp', '-index', 'index.txt', '-port', String(port), '-rsigner', 'ors.pem', '-rkey', 'ors.key', '-CA', 'oca.pem', '-nmin', '240', '-multi', String(multi)],
        { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
      let ready = false;
      for (let i = 0; i < 150 && !ready; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ready = await new Promise((r) => { const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); }); c.on('error', () => r(false)); });
      }
      if (!ready) throw new Error('openssl ocsp responder did not start');
      note(`wrk ${name}`);
      const r = await wrk(`http://127.0.0.1:${port}/`, { duration, connections, script: postScript(dir, name, path.join(dir, req)) });
      emit({ name: `ocsp.${name}.rps`, value: r.rps, unit: 'req/s', connections, processes: multi });
      emit({ name: `ocsp.${name}.p99`, value: r.p99, unit: 'ms', connections });
      if (r.errors) emit({ name: `ocsp.${name}.errors`, value: r.errors, unit: 'responses' });
      stopResponder(responder);
      responder = null;
    }
  } finally {
    if (responder) stopResponder(responder);
    if (plain) await new Promise((r) => { plain.closeAllConnections?.(); plain.close(() => r()); });
    if (kernel) await kernel.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
