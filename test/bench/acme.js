// `npm run bench -- acme [--rate 5] [--concurrency 8] [--orders 150] [--warmup 10] [--runs 1] [--poll 25]`
//
// ACME new-order -> certificate latency at a steady arrival rate, certctl next to Pebble on the
// same machine in the same run, driven by the same client code (the acme-client library, in a
// worker thread: test/bench/lib/acme-load.js):
//   - certctl: the kernel (in this process) on a private, durable PostgreSQL, the acme-server
//     protocol plugin in trust_authenticated mode (an order's authorizations are valid at once)
//     over a Local CA issuer; every certificate stored and audited as any other issuance;
//   - Pebble: Debian's `pebble` with PEBBLE_VA_ALWAYS_VALID=1 (challenges succeed without
//     validation: its nearest equivalent), PEBBLE_VA_NOSLEEP=1 and PEBBLE_WFE_NONCEREJECT=0.
//     Pebble keeps everything in memory; its authorizations start pending, so the client also
//     answers one challenge and polls it per order (the figures show the requests per order).
// Per server and run: one account, --warmup orders one at a time (not measured), then --orders
// orders arriving --rate per second with at most --concurrency in flight. Figures: latency p50
// and p99, achieved orders/s (`saturated` when below 90% of --rate: the server could not keep up
// and latency is mostly queueing), failures, HTTP requests per order, and CPU per certificate of
// each server's processes (kernel + PostgreSQL; Pebble) and of the client thread, from /proc;
// medians over --runs. Every certificate is parsed and its name checked. One JSON line per figure
// on stdout; progress on stderr.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, startKernel } from '../../kernel/dist/index.js';
import { openDatabase } from '../../kernel/dist/db/database.js';
import { runAcmeLoad } from './lib/acme-load.js';
import { apiClient } from './lib/https-client.js';
import { emit, note, percentile } from './lib/measure.js';
import { numericOptions } from './lib/options.js';
import { startPebble } from './lib/pebble.js';
import { benchPostgres } from './lib/postgres.js';
import { postmasterPid } from './lib/proc-cpu.js';

const median = (xs) => percentile(xs, 50);

const options = (args) => numericOptions(args, {
  rate: { default: 5, whole: false }, concurrency: { default: 8 }, orders: { default: 150 }, warmup: { default: 10, min: 0 }, runs: { default: 1 }, poll: { default: 25 },
});

/** A kernel on `databaseUrl` with a Local CA issuer and the ACME server endpoint in trust_authenticated mode. */
async function startCertctl(dir, databaseUrl) {
  const db = await openDatabase({ databaseUrl, poolMax: 20 });
  const kernel = await startKernel(loadConfig({
    CERTCTL_DATA_DIR: dir, CERTCTL_SERVER_HOST: '127.0.0.1', CERTCTL_SERVER_PORT: '0', CERTCTL_LOG_LEVEL: 'silent', CERTCTL_SCHEDULER_ENABLED: 'false',
    CERTCTL_DATABASE_URL: databaseUrl, CERTCTL_DATABASE_POOL_MAX: '20', CERTCTL_CONFIG_ENCRYPTION_KEY: 'bench-encryption-passphrase',
    CERTCTL_RATE_LIMIT_ENABLED: 'false',
  }), { log: pino({ level: 'silent' }), database: db });
  const ca = fs.readFileSync(path.join(dir, 'tls', 'server.crt'), 'utf8');
  const client = apiClient({ baseUrl: kernel.url, ca, key: kernel.initialAdminKey });
  try {
    await client.request('POST', '/api/v1/issuers', { body: { id: 'iss-acme-bench', name: 'ACME bench CA', type: 'local-ca', config: {} } });
    // The per-account order limit stays on (counted as in production), set above what the bench orders.
    await client.request('POST', '/api/v1/protocol-endpoints', {
      body: { name: 'ACME bench', type: 'acme-server', config: { issuer_id: 'iss-acme-bench', mode: 'trust_authenticated', rate_limits: { orders_per_hour: 1_000_000 } } },
    });
  } finally {
    client.close();
  }
  return { kernel, directoryUrl: `${kernel.url}/acme/directory`, ca };
}

export async function run(args) {
  const opts = options(args);
  emit({ name: 'host.loadavg1', value: os.loadavg()[0], unit: 'load', cpus: os.cpus().length, node: process.version });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-bench-acme-'));
  const pg = await benchPostgres({ synchronousCommit: 'on' });
  let certctl = null;
  let pebble = null;
  try {
    note(`starting the kernel on ${pg.label} and Pebble`);
    certctl = await startCertctl(path.join(dir, 'certctl'), pg.url);
    fs.mkdirSync(path.join(dir, 'pebble'));
    pebble = await startPebble(path.join(dir, 'pebble'), { PEBBLE_VA_ALWAYS_VALID: '1', PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' });
    const pgPid = postmasterPid(pg.port);
    const servers = [
      { name: 'certctl', directoryUrl: certctl.directoryUrl, ca: certctl.ca, detail: { db: pg.label, mode: 'trust_authenticated' }, watch: pgPid ? { postgres: pgPid } : {} },
      { name: 'pebble', directoryUrl: pebble.directoryUrl, ca: pebble.ca, detail: { mode: 'PEBBLE_VA_ALWAYS_VALID' }, watch: { pebble: pebble.pid } },
    ];
    const results = new Map(servers.map((s) => [s.name, []]));
    for (let runNo = 1; runNo <= opts.runs; runNo++) {
      for (const s of servers) {
        note(`run ${runNo}/${opts.runs}: ${s.name}: ${opts.warmup} warm-up orders, then ${opts.orders} at ${opts.rate}/s, at most ${opts.concurrency} in flight`);
        const load = os.loadavg()[0];
        const r = await runAcmeLoad({ directoryUrl: s.directoryUrl, ca: s.ca, rate: opts.rate, concurrency: opts.concurrency, orders: opts.orders, warmup: opts.warmup, tag: `${s.name}-r${runNo}`, poll: opts.poll, watch: s.watch });
        if (r.failures) note(`${s.name}: ${r.failures} orders failed; first: ${r.firstError}`);
        results.get(s.name).push({ ...r, load });
      }
    }
    for (const s of servers) {
      const rs = results.get(s.name);
      const common = { rate: opts.rate, concurrency: opts.concurrency, orders: opts.orders, runs: rs.length, ...s.detail };
      const p50s = rs.map((r) => percentile(r.latencies, 50));
      const p99s = rs.map((r) => percentile(r.latencies, 99));
      const rates = rs.map((r) => r.latencies.length / r.seconds);
      const samples = (xs) => xs.map((x) => Math.round(x * 10) / 10);
      emit({ name: `acme.${s.name}.order_to_cert_p50`, value: median(p50s), unit: 'ms', ...common, samples: samples(p50s) });
      emit({ name: `acme.${s.name}.order_to_cert_p99`, value: median(p99s), unit: 'ms', ...common, samples: samples(p99s) });
      emit({ name: `acme.${s.name}.orders_per_s`, value: median(rates), unit: 'certificates/s', ...common, saturated: median(rates) < 0.9 * opts.rate, samples: samples(rates) });
      emit({ name: `acme.${s.name}.failures`, value: rs.reduce((a, r) => a + r.failures, 0), unit: 'orders', ...(rs.find((r) => r.firstError) ? { first_error: rs.find((r) => r.firstError).firstError } : {}) });
      emit({ name: `acme.${s.name}.requests_per_order`, value: median(rs.map((r) => r.requestsPerOrder)), unit: 'HTTP requests', pending_authz_per_order: median(rs.map((r) => r.pendingAuthz)) });
      // CPU per certificate: the server's own processes (kernel = bench process minus the client thread), and the client's.
      const perOrder = (f) => { const xs = rs.map((r) => f(r.cpuMs)).filter((x) => Number.isFinite(x)); return xs.length ? median(xs) / opts.orders : null; };
      const serverCpu = s.name === 'certctl'
        ? { kernel: perOrder((c) => c.benchProcess - c.client), postgres: perOrder((c) => c.postgres) }
        : { pebble: perOrder((c) => c.pebble) };
      for (const [part, v] of Object.entries(serverCpu)) if (v !== null) emit({ name: `acme.${s.name}.cpu_${part}`, value: v, unit: 'cpu-ms/certificate' });
      const client = perOrder((c) => c.client);
      if (client !== null) emit({ name: `acme.${s.name}.cpu_client`, value: client, unit: 'cpu-ms/certificate', note: 'acme-client thread' });
      emit({ name: `acme.${s.name}.queued_arrivals`, value: rs.reduce((a, r) => a + r.queued, 0), unit: 'orders that waited for a free slot' });
      emit({ name: `acme.${s.name}.loadavg1`, value: median(rs.map((r) => r.load)), unit: 'load' });
    }
    emit({ name: 'host.loadavg1_end', value: os.loadavg()[0], unit: 'load' });
  } finally {
    pebble?.stop();
    if (certctl) await certctl.kernel.close();
    await pg.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
