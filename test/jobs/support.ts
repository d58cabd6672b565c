import pino from 'pino';
import { AuditLog } from '../../kernel/src/audit/audit-log.js';
import type { Database } from '../../kernel/src/db/database.js';
import { migrate } from '../../kernel/src/db/migrate.js';
import { JobQueue, type JobQueueOptions } from '../../kernel/src/jobs/job-queue.js';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import { freshDatabase } from '../support/test-db.js';
import { waitFor as pollUntil } from '../support/wait.js';

export const silent = pino({ level: process.env.CERTCTL_TEST_LOG_LEVEL ?? 'silent' });

/** A fresh migrated database with an audit log, and a factory for queues ("replicas") on it. */
export async function jobsHarness() {
  const fresh = await freshDatabase();
  const db: Database = fresh.db;
  // A no-op on a migrated template, as in startKernel; it also covers a template that failed to load.
  await migrate(db);
  const audit = new AuditLog(db.knex, silent);
  const queues: JobQueue[] = [];
  return {
    db,
    url: fresh.url,
    audit,
    queue(opts: Partial<JobQueueOptions> = {}): JobQueue {
      const q = new JobQueue(db.knex, audit, silent, {
        replicaId: `replica-${queues.length + 1}`, leaseMs: 60_000, maxAttempts: 3, concurrency: 4, backoffBaseMs: 10_000, ...opts,
      });
      queues.push(q);
      return q;
    },
    async job(id: string): Promise<JobRow> {
      return (await db.knex('jobs').where({ id }).first()) as JobRow;
    },
    /** Audit actions recorded for one job, oldest first. */
    async actions(id: string): Promise<string[]> {
      return (await db.knex('audit_events').where({ resource_type: 'job', resource_id: id }).orderBy('seq').pluck('action')) as string[];
    },
    /** Makes a job runnable now (skips its backoff), as time passing would. */
    async due(id: string): Promise<void> {
      await db.knex('jobs').where({ id }).update({ scheduled_at: db.knex.raw(`now() - interval '1 second'`) });
    },
    async close(): Promise<void> {
      for (const q of queues) await q.stop(1000);
      await db.close();
      await fresh.drop();
    },
  };
}

export type JobsHarness = Awaited<ReturnType<typeof jobsHarness>>;

export { sleep } from '../support/wait.js';

/** Polls until cond() holds or the time runs out (then throws with the label): the shared waitFor, condition first. */
export async function waitFor(cond: () => Promise<boolean> | boolean, label: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  await pollUntil(label, cond, timeoutMs, everyMs);
}

/** Milliseconds between two timestamps of one row (both from the database clock). */
export const gapMs = (later: Date | string | null, earlier: Date | string | null) => new Date(later!).getTime() - new Date(earlier!).getTime();
