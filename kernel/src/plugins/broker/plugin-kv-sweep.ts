import type { KernelServices } from '../../kernel-services.js';
import type { LoopDef } from '../../scheduler/scheduler.js';
import { PluginKv } from './plugin-kv.js';

/** How often expired kv rows are deleted, and how many per statement (short statements, no long locks). */
export const KV_SWEEP_INTERVAL_MS = 5 * 60_000;
const BATCH = 5000;

/**
 * Expired plugin_kv rows read as absent but stay on disk until deleted: an ACME
 * server leaves one nonce per response and orders and authorizations by the
 * thousand. One replica deletes them in batches every few minutes.
 */
export function pluginKvSweepLoop(k: Pick<KernelServices, 'db' | 'log'>): LoopDef {
  const kv = new PluginKv(k.db.knex);
  return {
    name: 'plugin-kv-sweep',
    intervalMs: KV_SWEEP_INTERVAL_MS,
    singleReplica: true,
    tick: async (signal) => {
      const removed = await sweepExpiredKv(kv, signal);
      if (removed) k.log.info({ removed }, 'expired plugin kv rows deleted');
    },
  };
}

export async function sweepExpiredKv(kv: PluginKv, signal?: AbortSignal): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await kv.sweepExpired(BATCH);
    total += n;
    if (n < BATCH || signal?.aborted) return total;
  }
}
