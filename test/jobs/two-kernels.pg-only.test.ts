import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../kernel/src/audit/audit-log.js';
import { openDatabase, type Database } from '../../kernel/src/db/database.js';
import { JobQueue } from '../../kernel/src/jobs/job-queue.js';
import { POSTGRES_UNAVAILABLE, dropPostgres, freshPostgresUrl } from '../support/test-db.js';
import { silent, sleep } from './support.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = path.join(ROOT, 'test/jobs/fixtures/job-replica.mjs');
const JOBS = 5_000;
const DEADLINE_MS = 90_000;

/** The children run the built kernel: rebuild it if any source file is newer than its output. */
function ensureKernelBuilt(): void {
  const src = path.join(ROOT, 'kernel/src');
  const stale = (dir: string): boolean => fs.readdirSync(dir, { withFileTypes: true }).some((e) => {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) return stale(file);
    if (!e.name.endsWith('.ts') || e.name.endsWith('.test.ts') || e.name.endsWith('.d.ts')) return false;
    const out = path.join(ROOT, 'kernel/dist', path.relative(src, file)).replace(/\.ts$/, '.js');
    return !fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(file).mtimeMs;
  });
  if (stale(src)) execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-b'], { cwd: ROOT, stdio: 'inherit' });
}

interface Replica { name: string; child: ChildProcess; stderr: string[]; exited: Promise<number | null> }

function startReplica(name: string, env: Record<string, string>): Promise<Replica> {
  const child = fork(FIXTURE, [], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env, TEST_REPLICA_NAME: name }, execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const replica = { name, child, stderr, exited };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica ${name} did not start in time: ${stderr.join('')}`)), 60_000);
    child.once('message', () => { clearTimeout(timer); resolve(replica); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`replica ${name} exited (${code}) during start: ${stderr.join('')}`)); });
  });
}

/** SIGTERM (graceful), then SIGKILL if it overstays the bound. */
async function stopReplica(r: Replica, boundMs: number): Promise<number | null> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return r.child.exitCode;
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), boundMs);
  const code = await r.exited;
  clearTimeout(timer);
  return code;
}

interface Span { replica: string; start: number; end: number }

/** Spans sorted by start that overlap their predecessor (should be none). */
function overlaps(spans: Span[]): [Span, Span][] {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const bad: [Span, Span][] = [];
  for (let i = 1; i < sorted.length; i++) if (sorted[i].start < sorted[i - 1].end) bad.push([sorted[i - 1], sorted[i]]);
  return bad;
}

describe.skipIf(POSTGRES_UNAVAILABLE)('two kernel processes on one PostgreSQL', () => {
  let url: string;
  let db: Database;
  const dirs: string[] = [];
  const replicas: Replica[] = [];

  beforeAll(async () => {
    ensureKernelBuilt();
    url = await freshPostgresUrl();
    db = await openDatabase({ databaseUrl: url, poolMax: 4 });
    await db.knex.schema.createTable('test_job_runs', (t) => {
      t.text('job_id').notNullable();
      t.text('replica').notNullable();
      t.specificType('ran_at', 'timestamptz').notNullable().defaultTo(db.knex.raw('clock_timestamp()'));
    });
    await db.knex.schema.createTable('test_loop_runs', (t) => {
      t.text('replica').notNullable();
      t.specificType('started_at', 'timestamptz').notNullable();
      t.specificType('finished_at', 'timestamptz').notNullable();
    });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => stopReplica(r, 5_000)));
    await db?.close();
    if (url) await dropPostgres(url);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it(`runs ${JOBS} jobs exactly once between them, and each loop on one of them at a time`, async () => {
    const env = (name: string) => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `certctl-replica-${name}-`));
      dirs.push(dataDir);
      return {
        CERTCTL_DATABASE_URL: url,
        CERTCTL_DATA_DIR: dataDir,
        CERTCTL_SERVER_PORT: '0',
        CERTCTL_SERVER_HOST: '127.0.0.1',
        CERTCTL_LOG_LEVEL: process.env.CERTCTL_TEST_LOG_LEVEL ?? 'warn',
        CERTCTL_CONFIG_ENCRYPTION_KEY: 'two-kernel-test-passphrase',
        CERTCTL_JOB_PROCESSOR_INTERVAL: '100ms',
        CERTCTL_JOB_REAPER_INTERVAL: '100ms',
        CERTCTL_AGENT_HEALTH_CHECK_INTERVAL: '100ms',
        CERTCTL_JOB_CONCURRENCY: '8',
        CERTCTL_JOB_LEASE: '30s',
        CERTCTL_SHUTDOWN_TIMEOUT: '10s',
        TEST_LOOP_INTERVAL_MS: '40',
      };
    };
    replicas.push(...(await Promise.all([startReplica('a', env('a')), startReplica('b', env('b'))])));

    // Enqueue from a third party (as an API call on either replica would), in one transaction.
    const producer = new JobQueue(db.knex, new AuditLog(db.knex, silent), silent, { replicaId: 'producer', leaseMs: 30_000, maxAttempts: 3, concurrency: 1, backoffBaseMs: 1_000 });
    const t0 = Date.now();
    const created = await producer.enqueue(Array.from({ length: JOBS }, (_, i) => ({ type: 'Validation' as const, payload: { n: i } })));
    expect(created).toHaveLength(JOBS);
    const enqueuedMs = Date.now() - t0;

    let completed = 0;
    const t1 = Date.now();
    while (completed < JOBS) {
      for (const r of replicas) if (r.child.exitCode !== null) throw new Error(`replica ${r.name} died: ${r.stderr.join('')}`);
      if (Date.now() - t1 > DEADLINE_MS) throw new Error(`only ${completed}/${JOBS} jobs completed in ${DEADLINE_MS} ms`);
      await sleep(100);
      completed = Number((await db.knex('jobs').where({ status: 'Completed' }).count<{ n: number }[]>({ n: '*' }))[0].n);
    }
    const drainMs = Date.now() - t1;
    await sleep(500); // a few more loop ticks after the rush

    // Graceful shutdown of both, within the bound.
    const s0 = Date.now();
    const codes = await Promise.all(replicas.map((r) => stopReplica(r, 15_000)));
    const stopMs = Date.now() - s0;
    expect(codes, replicas.map((r) => r.stderr.join('')).join('\n')).toEqual([0, 0]);

    const span = (await db.knex('jobs').min({ first: 'started_at' }).max({ last: 'completed_at' }))[0] as { first: Date; last: Date };
    const processMs = +new Date(span.last) - +new Date(span.first);
    const split = Object.fromEntries(((await db.knex('test_job_runs').select('replica').count<{ replica: string; n: number }[]>({ n: '*' }).groupBy('replica'))).map((r) => [r.replica, Number(r.n)]));
    console.log(JSON.stringify({
      jobs: JOBS, enqueue_ms: enqueuedMs, process_ms: processMs, jobs_per_s: Math.round(JOBS / (processMs / 1000)),
      wait_until_all_completed_ms: drainMs, split, stop_ms: stopMs,
    }));

    // Every job ran exactly once, none lost, none left behind.
    const runs = (await db.knex('test_job_runs').select('job_id', 'replica')) as { job_id: string; replica: string }[];
    const perJob = new Map<string, number>();
    for (const r of runs) perJob.set(r.job_id, (perJob.get(r.job_id) ?? 0) + 1);
    const twice = [...perJob].filter(([, n]) => n > 1);
    expect(twice).toEqual([]);
    expect(runs).toHaveLength(JOBS);
    expect(new Set(perJob.keys())).toEqual(new Set(created.map((j) => j.id)));
    const byStatus = (await db.knex('jobs').select('status').count<{ status: string; n: number }[]>({ n: '*' }).groupBy('status'))
      .map((r) => ({ status: r.status, n: Number(r.n) }));
    expect(byStatus).toEqual([{ status: 'Completed', n: JOBS }]);
    const share = { a: runs.filter((r) => r.replica === 'a').length, b: runs.filter((r) => r.replica === 'b').length };
    expect(share.a).toBeGreaterThan(0);
    expect(share.b).toBeGreaterThan(0);
    // Each completion was recorded once, and the audit chain written from two processes is intact.
    const completions = Number((await db.knex('audit_events').where({ action: 'job_completed' }).count<{ n: number }[]>({ n: '*' }))[0].n);
    expect(completions).toBe(JOBS);
    expect(await new AuditLog(db.knex, silent).verify()).toMatchObject({ valid: true });

    // Single-replica loops never overlapped across the two processes.
    const loopRuns = (await db.knex('scheduler_runs').orderBy('id')) as { loop: string; replica_id: string; started_at: Date; finished_at: Date | null; outcome: string }[];
    expect(loopRuns.filter((r) => r.outcome !== 'ok')).toEqual([]);
    const loops = [...new Set(loopRuns.map((r) => r.loop))].sort();
    // The kernel's loops and ours (other subsystems may add more; all are checked).
    expect(loops).toEqual(expect.arrayContaining(['agent-health', 'job-reaper', 'test-exclusive-loop']));
    for (const loop of loops) {
      const spans = loopRuns.filter((r) => r.loop === loop).map((r) => ({ replica: r.replica_id, start: +new Date(r.started_at), end: +new Date(r.finished_at!) }));
      expect(overlaps(spans), loop).toEqual([]);
    }
    const testLoop = loopRuns.filter((r) => r.loop === 'test-exclusive-loop');
    expect(new Set(testLoop.map((r) => r.replica_id)).size).toBe(2);
    const ticks = ((await db.knex('test_loop_runs')) as { replica: string; started_at: Date; finished_at: Date }[])
      .map((r) => ({ replica: r.replica, start: +new Date(r.started_at), end: +new Date(r.finished_at) }));
    expect(ticks.length).toBe(testLoop.length);
    expect(overlaps(ticks)).toEqual([]);
    expect(new Set(ticks.map((t) => t.replica))).toEqual(new Set(['a', 'b']));

  }, 150_000);
});
