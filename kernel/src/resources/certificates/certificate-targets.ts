import type { Knex } from 'knex';
import { appError } from '../../errors.js';

/**
 * Makes the certificate's deployment targets exactly `targetIds`. Unknown
 * targets are refused (422) before anything changes; returns what moved.
 */
export async function replaceTargets(trx: Knex.Transaction, certificateId: string, targetIds: string[]): Promise<{ added: string[]; removed: string[] }> {
  const wanted = [...new Set(targetIds)];
  if (wanted.length) {
    const found = new Set(((await trx('targets').whereIn('id', wanted).select('id')) as { id: string }[]).map((r) => r.id));
    const missing = wanted.filter((id) => !found.has(id));
    if (missing.length) {
      throw appError('REFERENCE_NOT_FOUND', `Unknown target(s): ${missing.join(', ')}`, {
        details: missing.map((id) => ({ path: `/target_ids/${targetIds.indexOf(id)}`, message: `target ${id} does not exist` })),
      });
    }
  }
  const current = ((await trx('certificate_target_mappings').where({ certificate_id: certificateId }).select('target_id')) as { target_id: string }[]).map((r) => r.target_id);
  const removed = current.filter((id) => !wanted.includes(id));
  const added = wanted.filter((id) => !current.includes(id));
  if (removed.length) await trx('certificate_target_mappings').where({ certificate_id: certificateId }).whereIn('target_id', removed).delete();
  if (added.length) await trx('certificate_target_mappings').insert(added.map((target_id) => ({ certificate_id: certificateId, target_id })));
  return { added, removed };
}

export const TARGET_SUMMARY_FIELDS = ['id', 'name', 'type', 'agent_id', 'enabled', 'created_at', 'updated_at'] as const;
