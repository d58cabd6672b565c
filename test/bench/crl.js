// `npm run bench -- crl [--sizes 10000,100000,1000000]`
//
// Signed DER CRLs of 10k, 100k and 1M entries: our streaming encoder in the crypto
// pool (kernel/src/crypto/crl-encoder.ts) next to `openssl ca -gencrl` on the same
// entries (same CA key, serials, times and reasons), in the same run. For each size:
// wall time of the generation, and the peak RSS of the process that did it (each
// side runs in a child process under /usr/bin/time -v, so one size does not inherit
// another's memory). Our output is then parsed back by openssl: signature verified
// against the CA and the entries counted. One JSON line per figure on stdout.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { emit, note } from './lib/measure.js';
import { makeCa } from './lib/openssl.js';

const here = fileURLToPath(import.meta.url);

/** The same entries for both sides, from a seed: serial i is 16 bytes derived from i, times spread over a week, reasons cycling. */
function* entries(n) {
  const base = Math.floor(Date.now() / 1000) - 7 * 86_400;
  // Reasons openssl ca's index can hold (it has no privilegeWithdrawn or aACompromise).
  const reasons = [0, 1, 4, 5, 3, 2];
  for (let i = 0; i < n; i++) {
    const serial = crypto.createHash('sha256').update(`serial-${i}`).digest().subarray(0, 16);
    serial[0] &= 0x7f;
    serial[0] |= 0x10;
    yield { serial, revokedAt: base + (i % 604_800), reason: reasons[i % reasons.length] };
  }
}

const REASON_NAMES = { 1: 'keyCompromise', 2: 'CACompromise', 3: 'affiliationChanged', 4: 'superseded', 5: 'cessationOfOperation' };

function utc(seconds) {
  const d = new Date(seconds * 1000);
  const p = (v) => String(v).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}

/** Child: our encoder in the crypto pool. Prints {ms, bytes} on stdout and writes the CRL. */
async function childOurs(dir, n) {
  const { CryptoService } = await import('../../kernel/dist/crypto/crypto-service.js');
  const serials = Buffer.allocUnsafe(n * 17);
  const revokedAt = new Float64Array(n);
  const reasons = new Uint8Array(n);
  let at = 0;
  let i = 0;
  for (const e of entries(n)) {
    serials[at++] = e.serial.length;
    at += e.serial.copy(serials, at);
    revokedAt[i] = e.revokedAt;
    reasons[i++] = e.reason;
  }
  const svc = new CryptoService({ minThreads: 1, maxThreads: 1, taskTimeoutMs: 120_000 });
  const request = {
    issuerCertPem: fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'), issuerKeyPem: fs.readFileSync(path.join(dir, 'ca.key'), 'utf8'),
    crlNumber: '1', thisUpdate: Date.now(), nextUpdate: Date.now() + 86_400_000, serials: serials.subarray(0, at), revokedAt, reasons, count: n,
  };
  // Warm the worker (thread start, module load) so the figure is the encoding.
  await svc.encodeCrl({ ...request, serials: request.serials.subarray(0, 17), count: 1 });
  const t0 = performance.now();
  const out = await svc.encodeCrl(request);
  const ms = performance.now() - t0;
  fs.writeFileSync(path.join(dir, `ours-${n}.der`), out.der);
  await svc.close();
  process.stdout.write(JSON.stringify({ ms, bytes: out.der.length }));
}

/** Peak RSS (MB) and wall time (ms) of a command, by /usr/bin/time -v. */
function timed(cmd, args, opts = {}) {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { ...opts, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.slice(-2000)}`);
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  return { ms, rssMb: rssKb / 1024, stdout: r.stdout };
}

function opensslSetup(dir, n) {
  const lines = [];
  const expiry = utc(Math.floor(Date.now() / 1000) + 365 * 86_400);
  for (const e of entries(n)) {
    const reason = REASON_NAMES[e.reason];
    lines.push(`R\t${expiry}\t${utc(e.revokedAt)}${reason ? `,${reason}` : ''}\t${e.serial.toString('hex').toUpperCase()}\tunknown\t/CN=leaf`);
  }
  const db = path.join(dir, `index-${n}.txt`);
  fs.writeFileSync(db, `${lines.join('\n')}\n`);
  fs.writeFileSync(path.join(dir, `crlnumber-${n}`), '01\n');
  fs.writeFileSync(path.join(dir, `ca-${n}.cnf`), [
    '[ ca ]', 'default_ca = bench', '[ bench ]', `dir = ${dir}`, `database = ${db}`, `crlnumber = ${dir}/crlnumber-${n}`,
    `certificate = ${dir}/ca.crt`, `private_key = ${dir}/ca.key`, 'default_md = sha256', 'default_crl_days = 1', 'crl_extensions = crl_ext',
    'unique_subject = no', '[ crl_ext ]', 'authorityKeyIdentifier = keyid:always', '',
  ].join('\n'));
}

export async function run(args) {
  const { values } = parseArgs({ args, options: { sizes: { type: 'string', default: '10000,100000,1000000' }, child: { type: 'string' }, dir: { type: 'string' } }, strict: true });
  if (values.child) return childOurs(values.dir, Number(values.child));
  const sizes = values.sizes.split(',').map(Number);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-bench-crl-'));
  try {
    makeCa(dir, 'Bench CRL CA');
    for (const n of sizes) {
      note(`${n} entries: ours`);
      const ours = timed(process.execPath, [here.replace(/crl\.js$/, 'run.js'), 'crl', '--child', String(n), '--dir', dir]);
      const inner = JSON.parse(ours.stdout);
      emit({ name: `crl.ours.${n}.encode_ms`, value: inner.ms, unit: 'ms' });
      emit({ name: `crl.ours.${n}.process_ms`, value: ours.ms, unit: 'ms' });
      emit({ name: `crl.ours.${n}.peak_rss`, value: ours.rssMb, unit: 'MB' });
      emit({ name: `crl.ours.${n}.bytes`, value: inner.bytes, unit: 'bytes' });
      const der = path.join(dir, `ours-${n}.der`);
      const verify = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', der, '-CAfile', path.join(dir, 'ca.crt'), '-noout'], { encoding: 'utf8' });
      const ok = /verify OK/.test(verify.stderr + verify.stdout);
      const count = Number(execFileSync('sh', ['-c', `openssl crl -inform DER -in '${der}' -noout -text | grep -c 'Serial Number:'`], { maxBuffer: 1 << 20 }).toString().trim());
      emit({ name: `crl.ours.${n}.openssl_verify_ok`, value: ok ? 1 : 0, unit: 'bool' });
      emit({ name: `crl.ours.${n}.openssl_entries`, value: count, unit: 'entries' });
      if (!ok || count !== n) throw new Error(`openssl does not read our ${n}-entry CRL back (verify ${ok}, ${count} entries)`);

      note(`${n} entries: openssl ca -gencrl`);
      opensslSetup(dir, n);
      const theirs = timed('openssl', ['ca', '-gencrl', '-config', path.join(dir, `ca-${n}.cnf`), '-out', path.join(dir, `openssl-${n}.pem`)], { cwd: dir });
      emit({ name: `crl.openssl.${n}.process_ms`, value: theirs.ms, unit: 'ms' });
      emit({ name: `crl.openssl.${n}.peak_rss`, value: theirs.rssMb, unit: 'MB' });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
