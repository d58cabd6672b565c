import type { KernelServices } from '../kernel-services.js';
import type { LoopDef } from '../scheduler/scheduler.js';
import { runExpiryCheck } from './expiry-check.js';

/**
 * Certificates that live under an hour (lifecycle-sql.ts SHORT_LIVED) would expire
 * between two runs of the hourly expiry check, so they get the same steps on their
 * own loop (CERTCTL_SHORT_LIVED_CHECK_INTERVAL, 30 s): expired and expiring statuses,
 * settling after a cancelled renewal, and renewal jobs. The hourly pass skips them.
 */
export function shortLivedLoop(k: KernelServices): LoopDef {
  return {
    name: 'short-lived-check',
    intervalMs: k.config.intervals.shortLivedCheckMs,
    tick: async (signal) => {
      const r = await runExpiryCheck(k, { signal, certificates: 'short-lived' });
      if (r.expired || r.expiring || r.resettled || r.renewalJobs) k.log.info(r, 'short-lived certificate check');
    },
  };
}
