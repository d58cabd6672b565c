import type { KernelServices } from '../kernel-services.js';
import { runExpiryCheck } from '../lifecycle/expiry-check.js';
import type { LoopDef } from './scheduler.js';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';

/** The kernel's own background loops. Subsystems add theirs through StartOptions.loops. */
export function kernelLoops(k: KernelServices): LoopDef[] {
  const maintenance: LoopDef[] = k.db.dialect === 'pglite'
    ? [{
        // PGlite has no autovacuum: without this, often-updated tables (jobs, agents, keys) only grow.
        name: 'database-maintenance',
        intervalMs: 6 * 3_600_000,
        runOnStart: false,
        tick: async () => { await k.db.knex.raw('VACUUM (ANALYZE)'); },
      }]
    : [];
  return [
    ...maintenance,
    {
      name: 'expiry-check',
      intervalMs: k.config.intervals.renewalCheckMs,
      tick: async (signal) => {
        const r = await runExpiryCheck(k, { signal });
        if (r.expired || r.expiring || r.resettled || r.renewalJobs || r.notifications) k.log.info(r, 'expiry check');
      },
    },
    {
      name: 'job-processor',
      intervalMs: k.config.intervals.jobProcessorMs,
      // Every replica claims work; SKIP LOCKED keeps them from taking the same job.
      singleReplica: false,
      tick: async (signal) => { await k.jobs.drainOnce(signal, { waitForJobs: false }); },
    },
    {
      name: 'job-reaper',
      intervalMs: k.config.intervals.leaseReaperMs,
      tick: async () => {
        const r = await k.jobs.reap();
        if (r.requeued || r.failed || r.approvalsExpired) k.log.info(r, 'reaped jobs');
      },
    },
    {
      name: 'agent-health',
      intervalMs: k.config.intervals.agentHealthCheckMs,
      tick: async () => {
        const cutoff = new Date(Date.now() - k.config.agentOfflineAfterMs);
        const stale = (await k.db.knex('agents').where({ status: 'Online' }).where('last_heartbeat_at', '<', cutoff)
          .update({ status: 'Offline', updated_at: k.db.knex.fn.now() }).returning('id')) as { id: string }[];
        if (stale.length) {
          await k.audit.append(stale.map((a) => ({ category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'agent_offline', resource_type: 'agent', resource_id: a.id, details: { cutoff: cutoff.toISOString() } })));
        }
      },
    },
  ];
}
