// `npm run bench -- issuance [--certs N] [--jobs N (0: none)] [--concurrency C] [--warmup N] [--agents N (0: no polling)] [--polls N] [--runs R]`
//
// What it costs to issue, next to what signing alone costs, in the same run:
//   1. raw ECDSA P-256 signatures/s (node:crypto, one thread): the floor nothing beats;
//   2. leaf certificates/s from the crypto pool (verify CSR + DER template + sign), all threads;
//   3. CSR -> stored, audited certificate/s through the issuance service on PostgreSQL (durable,
//      synchronous commit): profile and policy checks, the local-ca plugin in its worker, the CA
//      keystore, the crypto pool, and the store (version, certificate row, audit event in one
//      transaction, shared by the issuances finishing together: group commit); with the CPU
//      time each certificate cost the kernel process (and its main thread) and the PostgreSQL server;
//   4. the same through the job queue, as a renewal wave runs: --jobs Issuance jobs (CSR in the payload) run by
//      the queue at CERTCTL_JOB_CONCURRENCY 256 (claim with a lease, issue, store fenced on the lease, complete),
//      timed from the first claim to the last completion, after a warm-up of --warmup jobs;
//   5. 1,000 agents polling GET /api/v1/agents/{id}/work over HTTPS: latency p50/p99.
// Issuance is measured in steady state (measureSteady): the loop of --concurrency issuances runs from the
// warm-up to the end without draining, and the window counts --certs completions in between.
// Figures are medians of --runs runs. One JSON line per figure on stdout; progress on stderr.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { loadConfig, startKernel } from '../../kernel/dist/index.js';
import { openDatabase } from '../../kernel/dist/db/database.js';
import { generateApiKey } from '../../kernel/dist/auth/api-keys.js';
import { CryptoService } from '../../kernel/dist/crypto/crypto-service.js';
import { issueCertificate } from '../../kernel/dist/lifecycle/issuance-service.js';
import { apiClient } from './lib/https-client.js';
import { emit, measure, measureSteady, note, percentile, round } from './lib/measure.js';
import { makeCa, makeCsr } from './lib/openssl.js';
import { numericOptions } from './lib/options.js';
import { benchPostgres } from './lib/postgres.js';
import { postmasterPid, processTreeCpuMs, threadCpuMs } from './lib/proc-cpu.js';

const median = (xs) => percentile(xs, 50);

const options = (args) => numericOptions(args, {
  certs: { default: 10000 }, jobs: { default: 10000, min: 0 }, concurrency: { default: 256 }, agents: { default: 1000, min: 0 }, polls: { default: 20000 }, runs: { default: 3 }, warmup: { default: 3000, min: 0 },
});

/** A CA and one CSR for bench.example.test, made by openssl (the same CSR serves every certificate). */
function material(dir) {
  const ca = makeCa(dir, 'Bench CA');
  return { caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem: makeCsr(dir, 'leaf', 'bench.example.test', { sans: 'DNS:bench.example.test' }) };
}

function rawSignRate(seconds = 2) {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const tbs = crypto.randomBytes(420);
  let n = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 200; i++) crypto.sign('sha256', tbs, privateKey);
    n += 200;
  }
  return n / seconds;
}

async function poolRate(m, opts) {
  const threads = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  const svc = new CryptoService({ minThreads: threads, maxThreads: threads });
  const sign = (i) => svc.signCertificate({
    csrPem: m.csrPem, issuerCertPem: m.caCertPem, issuerKeyPem: m.caKeyPem, serialNumberHex: (i + 1).toString(16).padStart(16, '1'),
    notBefore: new Date().toISOString(), notAfter: new Date(Date.now() + 86_400_000).toISOString(), extensions: { extendedKeyUsage: ['serverAuth'] },
  });
  try {
    const r = await measure({ op: (_w, i) => sign(i), requests: 5000, warmup: 500, concurrency: opts.concurrency });
    return { rate: r.rps, threads };
  } finally {
    await svc.close();
  }
}

async function seedCertificates(knex, issuerId, n, runTag) {
  const ids = Array.from({ length: n }, (_, i) => `mc-bench-${runTag}-${i}`);
  for (let i = 0; i < n; i += 1000) {
    await knex('managed_certificates').insert(ids.slice(i, i + 1000).map((id) => ({
      id, name: id, common_name: 'bench.example.test', sans: JSON.stringify(['bench.example.test']), status: 'Pending', issuer_id: issuerId,
    })));
  }
  return ids;
}

/** Certificates, each with a Pending Issuance job carrying the CSR (as an agent's submitted CSR leaves it), runnable at `at`. */
async function seedJobs(knex, issuerId, n, runTag, csrPem, at) {
  const ids = await seedCertificates(knex, issuerId, n, runTag);
  for (let i = 0; i < n; i += 1000) {
    await knex('jobs').insert(ids.slice(i, i + 1000).map((id) => ({
      id: `job-${id}`, type: 'Issuance', status: 'Pending', certificate_id: id, payload: JSON.stringify({ csr_pem: csrPem }), scheduled_at: at,
    })));
  }
  return ids.map((id) => `job-${id}`);
}

async function seedAgents(knex, n) {
  const agents = [];
  for (let i = 0; i < n; i += 500) {
    const batch = Array.from({ length: Math.min(500, n - i) }, (_, j) => {
      const { key, hash, prefix } = generateApiKey();
      return { id: `agent-bench-${i + j}`, keyId: `key-bench-${i + j}`, key, hash, prefix };
    });
    await knex('api_keys').insert(batch.map((a) => ({ id: a.keyId, name: a.id, key_hash: a.hash, key_prefix: a.prefix, actor_type: 'agent' })));
    await knex('api_key_roles').insert(batch.map((a) => ({ id: `grant-${a.keyId}`, api_key_id: a.keyId, role_id: 'role-agent', scope_type: 'global', scope_id: '' })));
    await knex('agents').insert(batch.map((a) => ({ id: a.id, name: a.id, api_key_id: a.keyId, status: 'Online', last_heartbeat_at: new Date() })));
    agents.push(...batch);
  }
  return agents;
}

async function storedIssuance(m, opts) {
  const pgdb = await benchPostgres({ synchronousCommit: 'on' });
  const { url: databaseUrl, label, port: pgPort } = pgdb;
  const pgPid = postmasterPid(pgPort);
  const pgCpuMs = () => (pgPid === null ? null : processTreeCpuMs(pgPid));
  /** Starts counting CPU; the returned function gives CPU-ms per item since: kernel process, its main thread, PostgreSQL (null when unreadable). */
  const cpuMeter = () => {
    const cpu0 = process.cpuUsage();
    const main0 = threadCpuMs();
    const pg0 = pgCpuMs();
    return (items) => {
      const cpu = process.cpuUsage(cpu0);
      const main1 = threadCpuMs();
      const pg1 = pgCpuMs();
      return {
        kernel: (cpu.user + cpu.system) / 1000 / items,
        main: main0 !== null && main1 !== null ? (main1 - main0) / items : null,
        pg: pg0 !== null && pg1 !== null ? (pg1 - pg0) / items : null,
      };
    };
  };
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-bench-issuance-'));
    const db = await openDatabase({ databaseUrl, poolMax: 40 });
    const kernel = await startKernel(loadConfig({
      CERTCTL_DATA_DIR: dir, CERTCTL_SERVER_HOST: '127.0.0.1', CERTCTL_SERVER_PORT: '0', CERTCTL_LOG_LEVEL: 'silent', CERTCTL_SCHEDULER_ENABLED: 'false',
      CERTCTL_DATABASE_URL: databaseUrl, CERTCTL_DATABASE_POOL_MAX: '40', CERTCTL_CONFIG_ENCRYPTION_KEY: 'bench-encryption-passphrase',
      CERTCTL_RATE_LIMIT_ENABLED: 'false', CERTCTL_AUDIT_EXCLUDE_PATHS: '/health,/ready', CERTCTL_JOB_CONCURRENCY: String(Math.min(256, opts.concurrency)),
    }), { log: pino({ level: 'silent' }), database: db });
    try {
      const ca = fs.readFileSync(path.join(dir, 'tls', 'server.crt'), 'utf8');
      const client = apiClient({ baseUrl: kernel.url, ca, key: kernel.initialAdminKey, maxSockets: 64 });
      const issuer = await client.request('POST', '/api/v1/issuers', { body: { name: 'bench local CA', type: 'local-ca', config: {} } });
      const figures = { label, stored: [], storedP50: [], storedP99: [], nodeCpu: [], mainCpu: [], pgCpu: [], pollRate: [], pollP50: [], pollP99: [] };

      // Every run's certificates first, then statistics and a checkpoint: the runs measure issuing, not
      // the database catching up with the seeding (autovacuum, dirty pages) while they issue.
      const seeded = [];
      // Each run issues up to `concurrency` more than warmup + certs: the loop keeps going until the window closes.
      for (let run = 0; run < opts.runs; run++) seeded.push(await seedCertificates(kernel.db.knex, issuer.id, opts.certs + opts.warmup + opts.concurrency, `r${run}`));
      await kernel.db.knex.raw('VACUUM ANALYZE managed_certificates');
      await kernel.db.knex.raw('CHECKPOINT').catch(() => note('CHECKPOINT needs a superuser; skipped'));
      for (let run = 0; run < opts.runs; run++) {
        const ids = seeded[run];
        // The first --warmup calls warm up (worker threads, caches, connections, V8's optimising compiler) and are not
        // measured; the window then counts --certs completions while the loop stays full (measureSteady).
        let next = 0;
        const issue = () => issueCertificate(kernel, { certificateId: ids[next++], type: 'Issuance', csrPem: m.csrPem });
        note(`run ${run + 1}/${opts.runs}: issuing ${opts.certs} certificates at concurrency ${opts.concurrency}`);
        let meter = null;
        let cpu = null;
        const r = await measureSteady({
          op: issue,
          requests: opts.certs, warmup: opts.warmup, concurrency: opts.concurrency,
          onOpen: () => { meter = cpuMeter(); },
          onClose: () => { cpu = meter(opts.certs); },
        });
        // CPU per certificate over the window: this process (main thread, crypto pool, plugin workers) and the database's server processes.
        figures.nodeCpu.push(cpu.kernel);
        if (cpu.main !== null) figures.mainCpu.push(cpu.main);
        if (cpu.pg !== null) figures.pgCpu.push(cpu.pg);
        figures.stored.push(r.rps);
        note(`run ${run + 1}: ${Math.round(r.rps)} certificates/s, ${round(cpu.kernel)} kernel cpu-ms/certificate; all ${next} issued are stored and audited`);
        figures.storedP50.push(percentile(r.latencies, 50));
        figures.storedP99.push(percentile(r.latencies, 99));
        // Every certificate the run issued (warm-up, window and the loop's last calls) must be stored and audited.
        const issued = ids.slice(0, next);
        const versions = Number((await kernel.db.knex('certificate_versions').whereIn('certificate_id', issued).count({ n: '*' }).first()).n);
        const audits = Number((await kernel.db.knex('audit_events').whereIn('resource_id', issued).where({ action: 'certificate_issued' }).count({ n: '*' }).first()).n);
        if (versions !== issued.length || audits !== issued.length) throw new Error(`run ${run + 1} issued ${issued.length} certificates but stored ${versions} versions and ${audits} certificate_issued events`);
      }

      if (opts.jobs > 0) {
        // The measured jobs wait (scheduled an hour ahead) while the warm-up jobs run, then all become runnable at once.
        const later = new Date(Date.now() + 3_600_000);
        const warm = opts.warmup ? await seedJobs(kernel.db.knex, issuer.id, opts.warmup, 'jw', m.csrPem, new Date()) : [];
        const measured = await seedJobs(kernel.db.knex, issuer.id, opts.jobs, 'jm', m.csrPem, later);
        await kernel.db.knex.raw('VACUUM ANALYZE');
        await kernel.db.knex.raw('CHECKPOINT').catch(() => {});
        if (warm.length) await kernel.jobs.drainOnce();
        await kernel.db.knex('jobs').whereIn('id', measured).update({ scheduled_at: new Date(Date.now() - 1000) });
        note(`${opts.jobs} issuance jobs through the queue at CERTCTL_JOB_CONCURRENCY ${Math.min(256, opts.concurrency)}`);
        const meter = cpuMeter();
        const t0 = performance.now();
        await kernel.jobs.drainOnce();
        const seconds = (performance.now() - t0) / 1000;
        const cpu = meter(measured.length);
        const completed = Number((await kernel.db.knex('jobs').whereIn('id', measured).where({ status: 'Completed' }).count({ n: '*' }).first()).n);
        const versions = Number((await kernel.db.knex('certificate_versions').whereIn('job_id', measured).count({ n: '*' }).first()).n);
        if (completed !== measured.length || versions !== measured.length) throw new Error(`${measured.length} jobs: ${completed} completed, ${versions} versions stored`);
        figures.jobs = { rate: measured.length / seconds, cpu: cpu.kernel, main: cpu.main, pg: cpu.pg };
        note(`jobs: ${Math.round(figures.jobs.rate)}/s; all ${measured.length} completed with their versions`);
      }

      // --agents 0 leaves the polling figures out (quicker runs while working on issuance).
      const agents = opts.agents > 0 ? await seedAgents(kernel.db.knex, opts.agents) : [];
      if (agents.length) note(`seeded ${opts.agents} agents with their own keys`);
      for (let run = 0; agents.length && run < opts.runs; run++) {
        note(`run ${run + 1}/${opts.runs}: ${opts.polls} polls from ${opts.agents} agents, 64 at a time`);
        const poll = (i) => { const a = agents[i % agents.length]; return client.request('GET', `/api/v1/agents/${a.id}/work`, { key: a.key }); };
        const r = await measure({ op: (_w, i) => poll(i), requests: opts.polls, warmup: 500, concurrency: 64 });
        figures.pollRate.push(r.rps);
        figures.pollP50.push(percentile(r.latencies, 50));
        figures.pollP99.push(percentile(r.latencies, 99));
      }
      client.close();
      return figures;
    } finally {
      await kernel.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await pgdb.drop();
  }
}

export async function run(args) {
  const opts = options(args);
  const [load1] = os.loadavg();
  emit({ name: 'host.loadavg1', value: load1, unit: 'load', cpus: os.cpus().length, node: process.version });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-bench-material-'));
  const m = material(dir);

  const raw = Array.from({ length: opts.runs }, () => rawSignRate());
  emit({ name: 'issuance.raw_ecdsa_p256_sign', value: median(raw), unit: 'signatures/s', threads: 1, baseline: true });

  const pool = [];
  let threads = 1;
  for (let i = 0; i < opts.runs; i++) {
    const r = await poolRate(m, opts);
    pool.push(r.rate);
    threads = r.threads;
  }
  emit({ name: 'issuance.crypto_pool_leaf', value: median(pool), unit: 'certificates/s', threads, note: 'verify CSR + DER template + sign' });
  emit({ name: 'issuance.crypto_pool_vs_raw_sign_per_thread', value: median(pool) / threads / median(raw), unit: 'ratio' });

  const f = await storedIssuance(m, opts);
  emit({ name: 'issuance.stored_audited', value: median(f.stored), unit: 'certificates/s', db: f.label, concurrency: opts.concurrency, target: 2000 });
  emit({ name: 'issuance.stored_audited_latency_p50', value: median(f.storedP50), unit: 'ms', db: f.label });
  emit({ name: 'issuance.stored_audited_latency_p99', value: median(f.storedP99), unit: 'ms', db: f.label });
  emit({ name: 'issuance.stored_audited_cpu_kernel', value: median(f.nodeCpu), unit: 'cpu-ms/certificate', note: 'kernel process, all threads' });
  if (f.mainCpu.length) emit({ name: 'issuance.stored_audited_cpu_kernel_main_thread', value: median(f.mainCpu), unit: 'cpu-ms/certificate', note: 'of which the main thread (the rest: crypto pool, plugin workers, V8 GC/compiler threads)' });
  if (f.pgCpu.length) emit({ name: 'issuance.stored_audited_cpu_postgres', value: median(f.pgCpu), unit: 'cpu-ms/certificate', note: 'PostgreSQL server processes' });
  if (f.jobs) {
    emit({ name: 'issuance.jobs_completed', value: f.jobs.rate, unit: 'jobs/s', db: f.label, jobs: opts.jobs, job_concurrency: Math.min(256, opts.concurrency), note: 'Issuance jobs run by the queue: claim, issue, store fenced on the lease, complete; one run' });
    emit({ name: 'issuance.jobs_cpu_kernel', value: f.jobs.cpu, unit: 'cpu-ms/job', note: 'kernel process, all threads' });
    if (f.jobs.main !== null) emit({ name: 'issuance.jobs_cpu_kernel_main_thread', value: f.jobs.main, unit: 'cpu-ms/job' });
    if (f.jobs.pg !== null) emit({ name: 'issuance.jobs_cpu_postgres', value: f.jobs.pg, unit: 'cpu-ms/job', note: 'PostgreSQL server processes' });
  }
  if (f.pollRate.length) emit({ name: 'agents.poll_work_rate', value: median(f.pollRate), unit: 'requests/s', agents: opts.agents, concurrency: 64, db: f.label });
  if (f.pollRate.length) emit({ name: 'agents.poll_work_latency_p50', value: median(f.pollP50), unit: 'ms', agents: opts.agents, db: f.label });
  if (f.pollRate.length) emit({ name: 'agents.poll_work_latency_p99', value: median(f.pollP99), unit: 'ms', agents: opts.agents, db: f.label });
  fs.rmSync(dir, { recursive: true, force: true });
  emit({ name: 'host.loadavg1_end', value: os.loadavg()[0], unit: 'load' });
  note(`done (runs: ${opts.runs}; medians quoted; raw runs: stored ${f.stored.map((x) => round(x)).join(', ')})`);
}
