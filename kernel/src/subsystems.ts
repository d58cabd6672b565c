import type { JobHandler } from './jobs/job-queue.js';
import type { JobType } from './jobs/job-states.js';
import type { KernelServices } from './kernel-services.js';
import type { LoopDef } from './scheduler/scheduler.js';
import { issuanceJobHandlers } from './lifecycle/issuance-job.js';
import { shortLivedLoop } from './lifecycle/short-lived.js';
import { notificationLoop } from './notifications/notification-loop.js';
import { digestLoops } from './notifications/digest-send.js';
import { pluginKvSweepLoop } from './plugins/broker/plugin-kv-sweep.js';
import { revocationJobHandlers, revocationLoops } from './revocation/index.js';
import { caDrainLoop } from './ca/ca-routes.js';

/**
 * The lifecycle subsystems' job handlers and loops, registered by the kernel at boot.
 * One line per subsystem, so each stays in its own folder. A StartOptions handler for
 * the same job type (a test harness) replaces the subsystem's.
 */
export function subsystemJobHandlers(k: KernelServices): Partial<Record<JobType, JobHandler>> {
  return {
    ...issuanceJobHandlers(k),
    ...revocationJobHandlers(k),
  };
}

export function subsystemLoops(k: KernelServices): LoopDef[] {
  return [
    shortLivedLoop(k),
    notificationLoop(k),
    ...digestLoops(k),
    pluginKvSweepLoop(k),
    ...revocationLoops(k),
    caDrainLoop(k),
  ];
}
