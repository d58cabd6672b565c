import type { Knex } from 'knex';
import type { Principal } from '../../auth/principal.js';
import { appError } from '../../errors.js';

/**
 * Makes the certificate's deployment targets exactly `targetIds`; returns what moved.
 *
 * Mapping a certificate to a target decides what the target's agent writes to that
 * server (and, with server key generation, hands that agent the private key), so a
 * change needs the global target.manage permission, not only cert.edit: cert.edit
 * may be scoped to one profile, while targets are not scoped and may belong to
 * another team. Refused (403 target_mapping_forbidden) before anything changes, as
 * are unknown targets (422). Setting the same set again is not a change.
 */
export async function replaceTargets(trx: Knex.Transaction, principal: Principal, certificateId: string, targetIds: string[]): Promise<{ added: string[]; removed: string[] }> {
  const wanted = [...new Set(targetIds)];
  const current = ((await trx('certificate_target_mappings').where({ certificate_id: certificateId }).select('target_id')) as { target_id: string }[]).map((r) => r.target_id);
  const removed = current.filter((id) => !wanted.includes(id));
  const added = wanted.filter((id) => !current.includes(id));
  if (!added.length && !removed.length) return { added, removed };
  if (!principal.hasGlobal('target.manage')) {
    throw appError('TARGET_MAPPING_FORBIDDEN', 'Changing the deployment targets of a certificate needs the global target.manage permission (cert.edit alone does not let you deploy to a target)');
  }
  if (added.length) {
    const found = new Set(((await trx('targets').whereIn('id', added).select('id')) as { id: string }[]).map((r) => r.id));
    const missing = added.filter((id) => !found.has(id));
    if (missing.length) {
      throw appError('REFERENCE_NOT_FOUND', `Unknown target(s): ${missing.join(', ')}`, {
        details: missing.map((id) => ({ path: `/target_ids/${targetIds.indexOf(id)}`, message: `target ${id} does not exist` })),
      });
    }
  }
  if (removed.length) await trx('certificate_target_mappings').where({ certificate_id: certificateId }).whereIn('target_id', removed).delete();
  if (added.length) await trx('certificate_target_mappings').insert(added.map((target_id) => ({ certificate_id: certificateId, target_id })));
  return { added, removed };
}

export const TARGET_SUMMARY_FIELDS = ['id', 'name', 'type', 'agent_id', 'enabled', 'created_at', 'updated_at'] as const;
