import type { KernelServices } from '../kernel-services.js';
import type { LoopDef } from '../scheduler/scheduler.js';
import { dispatchNotifications, type DispatchOptions } from './notification-dispatch.js';

/**
 * The notification processor (CERTCTL_NOTIFICATION_PROCESS_INTERVAL, 1 minute
 * by default): sends what is due. Every replica runs it; claims are SKIP
 * LOCKED with a lease, so no row is sent twice.
 */
export function notificationLoop(k: KernelServices, options: Omit<DispatchOptions, 'signal'> = {}): LoopDef {
  return {
    name: 'notification-processor',
    intervalMs: k.config.intervals.notificationProcessMs,
    singleReplica: false,
    tick: async (signal) => {
      const r = await dispatchNotifications(k, { ...options, signal });
      if (r.claimed) k.log.info(r, 'notifications dispatched');
    },
  };
}
