// `npm run bench -- ocsp [--duration 5] [--runs 3] [--connections 64] [--revoked 10000] [--openssl-multi CPUs]`
//
// OCSP responses/s and latency under wrk on loopback, ours next to `openssl ocsp` as a
// responder on the same data in the same run:
//   - same CA: a Local CA issuer's CA; openssl signs with a delegated responder certificate
//     that the kernel's CA keystore issues from that CA, so both answers verify against it;
//   - same statuses: one good leaf and --revoked revoked serials, openssl's index.txt
//     written from the rows the kernel answers from (serials, revocation times, reason);
//   - same requests: the very DER requests (GET in the RFC 6960 A.1 base64 path form, POST
//     without a nonce, POST with a nonce) go to both.
// Ours: the kernel's PKI handler on its HTTPS listener (TLS 1.3) and on plain HTTP. Answers
// without a nonce come from the cache of pre-signed answers; a nonce makes ours sign live.
// openssl signs every answer.
// openssl's responder has no keep-alive (it answers HTTP/1.0 and then hangs on the closed
// connection), so the comparison is made with `Connection: close` on BOTH sides: one
// connection per request. Ours is measured with keep-alive too (how relying parties and CDNs
// reach it); figures say which in `keepalive`.
// Besides rate and latency: the responder's CPU time per response (/proc for openssl's
// processes, process.cpuUsage for ours), the figure least moved by other load on the machine.
// While wrk runs, a sampler fetches answers every 200 ms; each is checked by openssl
// afterwards (signature against the CA, status good, nonce echoed). A revoked serial is
// checked on both before measuring.
// Each figure is the median of --runs runs (scenarios interleaved, so load from elsewhere
// spreads over all of them). One JSON line per figure on stdout; progress on stderr.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, startKernel } from '../../kernel/dist/index.js';
import { pkiRequestHandler } from '../../kernel/dist/revocation/index.js';
import { apiClient } from './lib/https-client.js';
import { emit, note, percentile } from './lib/measure.js';
import { ocspOnce, startOpensslResponder, writeIndex } from './lib/openssl-ocsp.js';
import { processTreeCpuMs } from './lib/proc-cpu.js';
import { makeCsr, ssl } from './lib/openssl.js';
import { numericOptions } from './lib/options.js';
import { wrk, wrkScript } from './lib/wrk.js';

const median = (xs) => percentile(xs.filter((x) => Number.isFinite(x)), 50);

function options(args) {
  const o = numericOptions(args, {
    duration: { default: 5 }, runs: { default: 3 }, connections: { default: 64 }, revoked: { default: 10000, min: 0 },
    'openssl-multi': { default: os.availableParallelism?.() ?? os.cpus().length },
  });
  return { ...o, multi: o['openssl-multi'] };
}

/**
 * Checks one DER answer with openssl: successful, signature verified against the CA, the
 * expected status (and reason), and with a nonce in `reqFile` the nonce echoed.
 */
function checkAnswer(dir, der, { caFile, reqFile, status, reason }) {
  const resp = path.join(dir, `check-${crypto.randomBytes(4).toString('hex')}.der`);
  fs.writeFileSync(resp, der);
  const r = spawnSync('openssl', ['ocsp', '-respin', resp, '-reqin', reqFile, '-CAfile', caFile, '-resp_text'], { encoding: 'utf8' });
  fs.rmSync(resp);
  const out = `${r.stdout}\n${r.stderr}`;
  const problems = [
    !/OCSP Response Status: successful/.test(out) && 'not successful',
    !/Response verify OK/.test(out) && 'signature not verified',
    !new RegExp(`Cert Status: ${status}\\b`).test(out) && `status is not ${status}`,
    reason && !new RegExp(`Revocation Reason: ${reason}`).test(out) && `reason is not ${reason}`,
    /Nonce Verify error|WARNING: no nonce/.test(out) && 'nonce not echoed',
  ].filter(Boolean);
  if (problems.length) throw new Error(`bad OCSP answer (${problems.join(', ')}):\n${out.slice(0, 2000)}`);
}

/**
 * Fetches an answer every `everyMs` (at most `max`) until `forMs` have passed, so that none
 * is in flight when wrk stops (openssl's responder hangs on the connections wrk drops then).
 * The returned function waits for the last one and resolves the answers (or throws the first failure).
 */
function sampler(fetch, { forMs, everyMs = 200, max = 20 }) {
  const answers = [];
  const failures = [];
  const end = Date.now() + forMs;
  let pending = Promise.resolve();
  let timer = null;
  const tick = () => {
    if (answers.length + failures.length >= max || Date.now() >= end) return;
    pending = fetch().then((der) => answers.push(der), (err) => failures.push(err));
    timer = setTimeout(tick, everyMs);
  };
  timer = setTimeout(tick, everyMs);
  return async () => {
    clearTimeout(timer);
    await pending;
    if (failures.length) throw failures[0];
    return answers;
  };
}

/** A Local CA issuer, a good leaf and `revokedCount` revoked serials; the request files both responders get. */
async function setUp(kernel, dir, revokedCount) {
  const ca = fs.readFileSync(path.join(kernel.config.dataDir, 'tls', 'server.crt'), 'utf8');
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
  const revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
  const revoked = Array.from({ length: revokedCount }, (_, i) => crypto.createHash('sha256').update(`rev-${i}`).digest('hex').slice(0, 32).replace(/^./, '5'));
  for (let i = 0; i < revoked.length; i += 1000) {
    await knex('certificate_revocations').insert(revoked.slice(i, i + 1000).map((s, j) => ({
      id: `rev-bench-${i + j}`, issuer_id: 'iss-bench', ca_id: caRow.id, serial_number: s, reason: 'keyCompromise', reason_code: 1,
      revoked_at: revokedAt, revoked_by: 'bench', not_after: new Date(Date.now() + 86_400_000),
    })));
  }
  fs.writeFileSync(path.join(dir, 'ca.pem'), issued.chainPem[0]);
  fs.writeFileSync(path.join(dir, 'leaf.pem'), issued.certificatePem);
  ssl(['ocsp', '-issuer', 'ca.pem', '-cert', 'leaf.pem', '-no_nonce', '-reqout', 'plain.req'], dir);
  ssl(['ocsp', '-issuer', 'ca.pem', '-cert', 'leaf.pem', '-reqout', 'nonce.req'], dir);
  if (revoked.length) ssl(['ocsp', '-issuer', 'ca.pem', '-serial', `0x${revoked[0]}`, '-no_nonce', '-reqout', 'revoked.req'], dir);

  // openssl's side: a delegated responder from the same CA, and the same statuses in its index.
  const now = Date.now();
  const responder = await kernel.caKeystore.issueOcspResponder(caRow.id, { subject: 'certctl bench (openssl responder)', notBefore: now - 60_000, notAfter: now + 86_400_000 });
  fs.writeFileSync(path.join(dir, 'ors.pem'), responder.certificatePem);
  fs.writeFileSync(path.join(dir, 'ors.key'), responder.keyPem, { mode: 0o600 });
  writeIndex(path.join(dir, 'index.txt'), { good: [serial], revoked: revoked.map((s) => ({ serial: s, revokedAt, reason: 'keyCompromise' })), notAfter: leaf.validTo });
  return { hasRevoked: revoked.length > 0 };
}

export async function run(args) {
  const opts = options(args);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-bench-ocsp-'));
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  let kernel = null;
  let plain = null;
  let responder = null;
  emit({ name: 'host.loadavg1', value: os.loadavg()[0], unit: 'load', cpus: os.cpus().length, node: process.version });
  try {
    const config = loadConfig({
      CERTCTL_DATA_DIR: dataDir, CERTCTL_SERVER_HOST: '127.0.0.1', CERTCTL_SERVER_PORT: '0', CERTCTL_LOG_LEVEL: 'warn',
      CERTCTL_RATE_LIMIT_ENABLED: 'false', CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_CONFIG_ENCRYPTION_KEY: 'certctl-bench-passphrase',
      CERTCTL_PKI_RATE_LIMIT_RPS: '10000000', CERTCTL_PKI_RATE_LIMIT_BURST: '100000000',
    });
    note('starting a kernel (embedded PGlite) with a Local CA issuer');
    kernel = await startKernel(config, { log: pino({ level: 'warn' }, pino.destination(2)) });
    const tlsCa = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    const { hasRevoked } = await setUp(kernel, dir, opts.revoked);
    const file = (f) => path.join(dir, f);
    const req = { plain: fs.readFileSync(file('plain.req')), nonce: fs.readFileSync(file('nonce.req')) };
    const b64Path = encodeURIComponent(req.plain.toString('base64'));

    plain = http.createServer(pkiRequestHandler(kernel, (_q, s) => { s.statusCode = 404; s.end(); }));
    plain.keepAliveTimeout = 65_000;
    await new Promise((r) => plain.listen(0, '127.0.0.1', r));
    const ours = { http: `http://127.0.0.1:${plain.address().port}/.well-known/pki/ocsp/iss-bench`, https: `${kernel.url.replace('localhost', '127.0.0.1')}/.well-known/pki/ocsp/iss-bench` };
    const startOpenssl = () => startOpensslResponder({ dir, index: 'index.txt', caCert: 'ca.pem', rsigner: 'ors.pem', rkey: 'ors.key', multi: opts.multi, probeReq: 'plain.req' });

    // The same revoked serial, asked of both: revoked, keyCompromise, signature verified.
    const caFile = file('ca.pem');
    if (hasRevoked) {
      const revokedReq = fs.readFileSync(file('revoked.req'));
      responder = await startOpenssl();
      for (const url of [ours.http, responder.url]) checkAnswer(dir, await ocspOnce(url, revokedReq), { caFile, reqFile: file('revoked.req'), status: 'revoked', reason: 'keyCompromise' });
      responder.stop();
      responder = null;
    }

    const scripts = {};
    for (const close of [false, true]) {
      const tag = close ? 'close' : 'ka';
      scripts[`get_${tag}`] = wrkScript(dir, `get-${tag}`, { close });
      scripts[`plain_${tag}`] = wrkScript(dir, `plain-${tag}`, { method: 'POST', bodyFile: file('plain.req'), contentType: 'application/ocsp-request', close });
      scripts[`nonce_${tag}`] = wrkScript(dir, `nonce-${tag}`, { method: 'POST', bodyFile: file('nonce.req'), contentType: 'application/ocsp-request', close });
    }
    // kind: get (pre-signed on ours), post (pre-signed on ours), nonce (live-signed on both).
    const kinds = { get: { suffix: `/${b64Path}`, body: null, reqFile: 'plain.req' }, post: { suffix: '', body: req.plain, reqFile: 'plain.req' }, nonce: { suffix: '', body: req.nonce, reqFile: 'nonce.req' } };
    const label = { get: 'get_presigned', post: 'post_presigned', nonce: 'post_nonce_live' };
    const scenarios = [];
    for (const kind of ['get', 'post', 'nonce']) {
      scenarios.push({ name: `ours.http.${label[kind]}`, side: 'ours', base: ours.http, kind, keepalive: true });
      scenarios.push({ name: `ours.https.${label[kind]}`, side: 'ours', base: ours.https, kind, keepalive: true });
      scenarios.push({ name: `ours.http_close.${label[kind]}`, side: 'ours', base: ours.http, kind, keepalive: false });
      scenarios.push({ name: `openssl.http_close.${kind === 'nonce' ? 'post_nonce' : kind}`, side: 'openssl', kind, keepalive: false });
    }
    const results = new Map(scenarios.map((s) => [s.name, []]));
    for (let runNo = 1; runNo <= opts.runs; runNo++) {
      for (const s of scenarios) {
        const k = kinds[s.kind];
        if (s.side === 'openssl') responder = await startOpenssl();
        // openssl's GET form is the base64 request right after the host: /<base64>.
        const url = s.side === 'openssl' ? `${responder.url}${k.suffix.slice(1)}` : `${s.base}${k.suffix}`;
        note(`run ${runNo}/${opts.runs}: wrk ${s.name}`);
        const stopSampling = sampler(() => ocspOnce(url, k.body, { ca: tlsCa }), { forMs: opts.duration * 1000 - 700 });
        const script = scripts[`${s.kind === 'post' ? 'plain' : s.kind}_${s.keepalive ? 'ka' : 'close'}`];
        // CPU of the responder: this process for ours (the sampler's few requests included), openssl's processes for it.
        const cpuNow = s.side === 'openssl' ? () => processTreeCpuMs(responder.pid) : () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
        const cpu0 = cpuNow();
        const r = await wrk(url, { duration: opts.duration, connections: opts.connections, script });
        const cpu1 = cpuNow();
        const samples = await stopSampling();
        if (responder) {
          responder.stop();
          responder = null;
        }
        for (const der of samples) checkAnswer(dir, der, { caFile, reqFile: file(k.reqFile), status: 'good' });
        results.get(s.name).push({ ...r, checked: samples.length, cpuUs: cpu0 === null || cpu1 === null || !r.requests ? NaN : ((cpu1 - cpu0) * 1000) / r.requests });
      }
    }
    for (const s of scenarios) {
      const rs = results.get(s.name);
      const common = { connections: opts.connections, keepalive: s.keepalive, runs: rs.length, ...(s.side === 'openssl' ? { processes: opts.multi } : {}) };
      emit({ name: `ocsp.${s.name}.rps`, value: median(rs.map((r) => r.rps)), unit: 'req/s', ...common, samples: rs.map((r) => Math.round(r.rps)) });
      emit({ name: `ocsp.${s.name}.p50`, value: median(rs.map((r) => r.p50)), unit: 'ms', ...common });
      emit({ name: `ocsp.${s.name}.p99`, value: median(rs.map((r) => r.p99)), unit: 'ms', ...common });
      emit({ name: `ocsp.${s.name}.cpu`, value: median(rs.map((r) => r.cpuUs)), unit: 'cpu-us/response', ...common, note: s.side === 'openssl' ? 'openssl processes' : 'bench process (kernel)' });
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      if (errors) emit({ name: `ocsp.${s.name}.errors`, value: errors, unit: 'responses', requests: rs.reduce((a, r) => a + r.requests, 0) });
      emit({ name: `ocsp.${s.name}.checked`, value: rs.reduce((a, r) => a + r.checked, 0), unit: 'answers verified by openssl during load' });
    }
    emit({ name: 'host.loadavg1_end', value: os.loadavg()[0], unit: 'load' });
  } finally {
    responder?.stop();
    if (plain) await new Promise((r) => { plain.closeAllConnections?.(); plain.close(() => r()); });
    if (kernel) await kernel.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
