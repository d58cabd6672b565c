// `npm run bench -- api [--db pglite|postgres|both] [--rows N] [--requests N] [--warmup N] [--jobs N]
//                       [--pg-sync-commit on|off]`   (docs/benchmarks.md explains every figure)
//
// Seeds N managed certificates (default 100,000), starts a kernel on them and measures
// GET /api/v1/certificates over keep-alive HTTPS from a worker thread (page 1, a deep page,
// filters, sort, cursor walk, sparse fields; sequential and at concurrency 8), each against
// the same list query run directly through knex (no HTTP, auth or audit).
// Then job throughput: enqueue through the JobQueue, claim + complete with a no-op
// handler, against raw FOR UPDATE SKIP LOCKED claims without audit.
// One JSON line per figure on stdout; progress on stderr.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig, startKernel } from '../../kernel/dist/index.js';
import { openDatabase } from '../../kernel/dist/db/database.js';
import { migrate } from '../../kernel/dist/db/migrate.js';
import { authenticateApiKey } from '../../kernel/dist/auth/api-keys.js';
import { parseListQuery, runList } from '../../kernel/dist/http/list-query.js';
import { JobQueue } from '../../kernel/dist/jobs/job-queue.js';
import { JOB_TYPES } from '../../kernel/dist/jobs/job-states.js';
import { certificateListSpec, serializeCertificate } from '../../kernel/dist/resources/certificates/certificate-model.js';
import { startLoadWorker } from './lib/http-load.js';
import { CURSOR_PAGE_SIZE, listScenarios, scenarioOp } from './lib/list-scenarios.js';
import { emit, measure, note, round } from './lib/measure.js';
import { findPgBin } from '../support/postgres-cluster.js';
import { benchPostgres } from './lib/postgres.js';
import { seedCertificates, seedJobs } from './lib/seed.js';

const CONCURRENCY = [1, 8];
// Requests per scenario and concurrency, after the warm-up. PGlite answers one query at a
// time and its count(*) is slower, so it gets fewer to keep the whole run near ten minutes.
const DEFAULT_REQUESTS = { postgres: { requests: 300, warmup: 30 }, pglite: { requests: 200, warmup: 20 } };

function options(args) {
  const { values } = parseArgs({
    args,
    options: {
      db: { type: 'string' },
      rows: { type: 'string', default: '100000' },
      requests: { type: 'string' },
      warmup: { type: 'string' },
      jobs: { type: 'string', default: '20000' },
      'pg-sync-commit': { type: 'string', default: 'on' },
    },
  });
  const havePostgres = Boolean(process.env.CERTCTL_BENCH_DATABASE_URL || findPgBin());
  const db = values.db ?? (havePostgres ? 'both' : 'pglite');
  if (!['pglite', 'postgres', 'both'].includes(db)) throw new Error('--db must be pglite, postgres or both');
  if (db !== 'pglite' && !havePostgres) throw new Error('PostgreSQL is not installed (apt-get install postgresql) and CERTCTL_BENCH_DATABASE_URL is not set');
  const num = (k) => {
    if (values[k] === undefined) return undefined;
    const n = Number(values[k]);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${k} must be a whole number`);
    return n;
  };
  const syncCommit = values['pg-sync-commit'];
  if (!['on', 'off'].includes(syncCommit)) throw new Error('--pg-sync-commit must be on or off');
  return { dbs: db === 'both' ? ['postgres', 'pglite'] : [db], rows: num('rows'), requests: num('requests'), warmup: num('warmup'), jobs: num('jobs'), syncCommit };
}

export async function run(args) {
  const opts = options(args);
  const started = performance.now();
  const [load1] = os.loadavg();
  // Other work on the machine skews every figure: record how busy it was.
  emit({ name: 'host.loadavg1', value: load1, unit: 'load', cpus: os.cpus().length, node: process.version });
  for (const kind of opts.dbs) {
    await benchDatabase(kind, {
      ...opts,
      requests: opts.requests ?? DEFAULT_REQUESTS[kind].requests,
      warmup: opts.warmup ?? DEFAULT_REQUESTS[kind].warmup,
    });
  }
  note(`done in ${round((performance.now() - started) / 1000, 1)} s`);
}

/** A fresh database of the given kind; `drop` removes it (and the private cluster, if we started one). */
async function provision(kind, dataDir, opts) {
  if (kind === 'pglite') {
    const db = await openDatabase({ pgliteDir: path.join(dataDir, 'db') });
    return { db, env: {}, label: 'PGlite', settings: {}, drop: async () => {} };
  }
  const pgdb = await benchPostgres({ adminUrl: process.env.CERTCTL_BENCH_DATABASE_URL, synchronousCommit: opts.syncCommit });
  const db = await openDatabase({ databaseUrl: pgdb.url });
  return { db, env: { CERTCTL_DATABASE_URL: pgdb.url }, label: pgdb.label, settings: pgdb.settings, drop: pgdb.drop };
}

async function benchDatabase(kind, opts) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `certctl-bench-${kind}-`));
  const { db, env, label, settings, drop } = await provision(kind, dataDir, opts);
  let kernel = null;
  try {
    note(`${label}: migrating and seeding ${opts.rows} certificates`);
    await migrate(db);
    const t0 = performance.now();
    await seedCertificates(db.knex, opts.rows);
    emit({ name: 'seed.certificates', value: (performance.now() - t0) / 1000, unit: 's', db: kind, rows: opts.rows, server: label, ...settings });

    const config = loadConfig({
      CERTCTL_DATA_DIR: dataDir,
      CERTCTL_SERVER_HOST: '127.0.0.1',
      CERTCTL_SERVER_PORT: '0',
      CERTCTL_LOG_LEVEL: 'warn',
      CERTCTL_RATE_LIMIT_ENABLED: 'false',
      CERTCTL_SCHEDULER_ENABLED: 'false',
      CERTCTL_CONFIG_ENCRYPTION_KEY: 'certctl-bench-passphrase',
      ...env,
    });
    // The kernel takes over the database and closes it with itself. Its log goes to
    // stderr: stdout carries only the figures.
    kernel = await startKernel(config, { database: db, log: pino({ level: config.logLevel, base: { svc: 'certctl' } }, pino.destination(2)) });
    const ca = fs.readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    const now = Date.now();
    const client = startLoadWorker({ baseUrl: kernel.url, ca, key: kernel.initialAdminKey, now, rows: opts.rows });
    try {
      await listBench(kind, kernel, client, { ...opts, now });
    } finally {
      await client.close();
    }
    if (opts.jobs > 0) await jobBench(kind, kernel, opts.jobs);
  } finally {
    if (kernel) await kernel.close();
    else await db.close().catch(() => {});
    await drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function listBench(kind, kernel, client, opts) {
  const knex = kernel.db.knex;
  const run = { requests: opts.requests, warmup: opts.warmup };
  // The baseline: the route's own list query, without HTTP, TLS, auth, audit or JSON.
  const viaKnex = (query) => runList(() => knex('managed_certificates'), certificateListSpec, parseListQuery(certificateListSpec, query), serializeCertificate);

  // The per-request floor: an authenticated call that reads no inventory, against the
  // key lookup authentication makes (the api_keys row, then the grants join).
  note(`${kind} auth_me: GET /api/v1/auth/me`);
  for (const concurrency of CONCURRENCY) {
    const base = await measure({ op: () => authenticateApiKey(knex, kernel.initialAdminKey), ...run, concurrency });
    const http = await client.measure({ path: '/api/v1/auth/me', ...run, concurrency });
    emitLatency('request.auth_me', http, base, { db: kind, concurrency, requests: opts.requests });
  }

  // How much of an unfiltered list is the total: count(*) alone, and the page-1 rows alone.
  const parts = { requests: Math.min(opts.requests, 100), warmup: 5, concurrency: 1 };
  const count = await measure({ op: () => knex('managed_certificates').count({ n: '*' }).first(), ...parts });
  const rows = await measure({ op: () => knex('managed_certificates').orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(50), ...parts });
  emit({ name: 'list.parts.count_all.p50', value: count.p50, unit: 'ms', db: kind, concurrency: 1, requests: parts.requests });
  emit({ name: 'list.parts.page1_rows.p50', value: rows.p50, unit: 'ms', db: kind, concurrency: 1, requests: parts.requests });
  note(`${kind} list parts: SELECT count(*) p50 ${round(count.p50)} ms | page-1 rows alone p50 ${round(rows.p50)} ms`);

  for (const scenario of listScenarios(opts.now, opts.rows)) {
    const sample = await client.get(`/api/v1/certificates?${new URLSearchParams(scenario.cursor ? { page_size: String(CURSOR_PAGE_SIZE) } : scenario.query)}`);
    if (scenario.name === 'page1' && (sample.total !== opts.rows || sample.data.length !== Math.min(50, opts.rows))) {
      throw new Error(`unexpected first page: total=${sample.total}, rows=${sample.data.length}`);
    }
    note(`${kind} ${scenario.name}: ${scenario.what} (total ${sample.total}, ${sample.data.length} rows per page)`);
    for (const concurrency of CONCURRENCY) {
      const base = await measure({ op: scenarioOp(scenario, viaKnex), ...run, concurrency });
      const http = await client.measure({ scenario: scenario.name, ...run, concurrency });
      emitLatency(`list.${scenario.name}`, http, base, { db: kind, concurrency, requests: opts.requests });
    }
  }
}

/** p50, p99 and rate of the HTTPS run, each with its baseline; the baseline also on its own lines. */
function emitLatency(name, http, base, tags) {
  for (const p of ['p50', 'p99']) {
    emit({ name: `${name}.${p}`, value: http[p], unit: 'ms', ...tags, baseline: round(base[p]) });
    emit({ name: `${name}.baseline.${p}`, value: base[p], unit: 'ms', ...tags });
  }
  emit({ name: `${name}.rps`, value: http.rps, unit: 'req/s', ...tags, baseline: round(base.rps) });
  note(`  c=${tags.concurrency}  https p50 ${round(http.p50)} p99 ${round(http.p99)} ms ${round(http.rps, 0)} req/s | baseline p50 ${round(base.p50)} p99 ${round(base.p99)} ms ${round(base.rps, 0)}/s`);
}

const rowsOf = (res) => res.rows ?? res;
const completeNow = (knex) => ({ status: 'Completed', completed_at: knex.fn.now(), lease_owner: null, lease_expires_at: null, updated_at: knex.fn.now() });

/** Claims and completes every runnable job of `type` with plain SQL and no audit, `batch` at a time. */
async function rawClaimRate(knex, type, count, batch, workers) {
  await seedJobs(knex, count, type, `job-raw${batch}`);
  const start = performance.now();
  const worker = async () => {
    for (;;) {
      // The queue's own claim statement, minus the lease bookkeeping it does not need here.
      const claimed = rowsOf(await knex.raw(
        `WITH next AS (
           SELECT id FROM jobs WHERE status = 'Pending' AND scheduled_at <= now() AND type = ?
            ORDER BY scheduled_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
         UPDATE jobs j SET status = 'Running', lease_owner = 'bench', lease_expires_at = now() + interval '5 minutes',
                attempts = j.attempts + 1, started_at = now(), updated_at = now()
           FROM next WHERE j.id = next.id RETURNING j.id`, [type, batch]));
      if (!claimed.length) return;
      await knex('jobs').whereIn('id', claimed.map((r) => r.id)).where({ status: 'Running', lease_owner: 'bench' }).update(completeNow(knex));
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return count / ((performance.now() - start) / 1000);
}

/** Claim + complete through a JobQueue with a no-op handler until nothing is runnable. */
async function drainRate(knex, queue, type, count) {
  const start = performance.now();
  let ran = 0;
  for (let n = await queue.drainOnce(); n > 0; n = await queue.drainOnce()) ran += n;
  const seconds = (performance.now() - start) / 1000;
  const { n: open } = await knex('jobs').where({ type }).whereNot({ status: 'Completed' }).count({ n: '*' }).first();
  if (ran !== count || Number(open) !== 0) throw new Error(`expected ${count} completed jobs, ran ${ran}, ${open} not completed`);
  return count / seconds;
}

async function jobBench(kind, kernel, count) {
  const knex = kernel.db.knex;
  const jobs = kernel.jobs;
  const type = JOB_TYPES.find((t) => !jobs.handledTypes().includes(t));
  if (!type) throw new Error('every job type already has a handler; nothing free to benchmark with');
  const concurrency = kernel.config.jobs.concurrency;
  const noop = async () => ({ status: 'completed' });
  const enqueue = async (queue, n) => {
    for (let i = 0; i < n; i += 1000) {
      await queue.enqueue(Array.from({ length: Math.min(1000, n - i) }, () => ({ type, payload: { bench: true } })));
    }
  };

  // Enqueue through the queue: batched inserts plus one job_created audit row per job.
  const t0 = performance.now();
  await enqueue(jobs, count);
  const enqueueRate = count / ((performance.now() - t0) / 1000);
  emit({ name: 'jobs.enqueue.rate', value: enqueueRate, unit: 'jobs/s', db: kind, jobs: count, batch: 1000 });
  note(`${kind} jobs: enqueued ${count} ${type} jobs at ${round(enqueueRate, 0)} jobs/s`);

  // The kernel's queue at its configured concurrency; each completion is a transaction with an audit row.
  jobs.registerHandler(type, noop);
  const queueRate = await drainRate(knex, jobs, type, count);
  // Baselines on fresh rows, no audit: claims of 100 at a time, and one at a time (the queue's shape).
  const raw100 = await rawClaimRate(knex, type, count, 100, concurrency);
  const singles = Math.min(count, 2000);
  const raw1 = await rawClaimRate(knex, type, singles, 1, concurrency);
  emit({ name: 'jobs.claim_complete.rate', value: queueRate, unit: 'jobs/s', db: kind, jobs: count, concurrency, baseline: round(raw100) });
  emit({ name: 'jobs.raw_claim100.rate', value: raw100, unit: 'jobs/s', db: kind, jobs: count, concurrency, batch: 100 });
  emit({ name: 'jobs.raw_claim1.rate', value: raw1, unit: 'jobs/s', db: kind, jobs: singles, concurrency, batch: 1 });
  note(`${kind} jobs: queue claim+complete ${round(queueRate, 0)} jobs/s (concurrency ${concurrency}) | raw, no audit: claim 100 ${round(raw100, 0)} jobs/s, claim 1 ${round(raw1, 0)} jobs/s`);

  // More workers only help where the database runs queries in parallel.
  if (kernel.db.dialect === 'postgres') {
    const wide = 16;
    const n = Math.min(count, 3000);
    const queue = new JobQueue(knex, kernel.audit, kernel.log.child({ mod: 'bench-jobs' }), { ...jobs.opts, concurrency: wide, replicaId: `${jobs.opts.replicaId}-wide` });
    queue.registerHandler(type, noop);
    await enqueue(queue, n);
    const rate = await drainRate(knex, queue, type, n);
    await queue.stop(1000);
    emit({ name: 'jobs.claim_complete.rate', value: rate, unit: 'jobs/s', db: kind, jobs: n, concurrency: wide, baseline: round(raw100) });
    note(`${kind} jobs: queue claim+complete at concurrency ${wide}: ${round(rate, 0)} jobs/s`);
  }
}
