import type { Knex } from 'knex';
import type { Permission } from '../../auth/permissions.js';
import type { Principal } from '../../auth/principal.js';
import { appError, type ErrorDetail } from '../../errors.js';
import type { CertificateRow } from './certificate-model.js';


/**
 * Loads a certificate the caller may see with `readVia` (any of the given
 * permissions, honouring profile/issuer scope). Out-of-scope certificates are
 * reported as missing, so a scoped caller cannot probe for their existence.
 */
export async function loadVisibleCertificate(
  db: Knex | Knex.Transaction,
  id: string,
  principal: Principal,
  readVia: Permission[],
  opts: { lock?: boolean } = {},
): Promise<CertificateRow> {
  const q = db('managed_certificates').where({ id }).first();
  const row = (await (opts.lock ? q.forUpdate() : q)) as CertificateRow | undefined;
  if (!row || !readVia.some((p) => principal.can(p, row))) throw appError('NOT_FOUND', `Certificate ${id} not found`);
  return row;
}

export interface CertificateRefs {
  owner_id?: string | null;
  issuer_id?: string | null;
  profile_id?: string | null;
  renewal_policy_id?: string | null;
  agent_id?: string | null;
}

const REF_TABLES: Record<keyof CertificateRefs, { table: string; noun: string }> = {
  owner_id: { table: 'owners', noun: 'owner' },
  issuer_id: { table: 'issuers', noun: 'issuer' },
  profile_id: { table: 'certificate_profiles', noun: 'profile' },
  renewal_policy_id: { table: 'renewal_policies', noun: 'renewal policy' },
  agent_id: { table: 'agents', noun: 'agent' },
};

export interface ResolvedRefs {
  issuer?: { id: string; enabled: boolean };
  profile?: { id: string; enabled: boolean; requires_approval: boolean };
}

/**
 * Checks that every referenced row exists (422 naming all the missing ones) and
 * that a referenced issuer or profile is enabled (409): a certificate must not
 * be pointed at something that cannot issue it.
 */
export async function checkReferences(trx: Knex.Transaction, refs: CertificateRefs): Promise<ResolvedRefs> {
  const missing: ErrorDetail[] = [];
  const resolved: ResolvedRefs = {};
  for (const [field, { table, noun }] of Object.entries(REF_TABLES) as [keyof CertificateRefs, { table: string; noun: string }][]) {
    const id = refs[field];
    if (id === undefined || id === null) continue;
    const cols = field === 'issuer_id' ? ['id', 'enabled'] : field === 'profile_id' ? ['id', 'enabled', 'requires_approval'] : ['id'];
    const row = await trx(table).where({ id }).first(cols);
    if (!row) missing.push({ path: `/${field}`, message: `${noun} ${id} does not exist` });
    else if (field === 'issuer_id') resolved.issuer = row;
    else if (field === 'profile_id') resolved.profile = row;
  }
  if (missing.length) throw appError('REFERENCE_NOT_FOUND', missing.map((m) => m.message).join('; '), { details: missing });
  if (resolved.issuer && !resolved.issuer.enabled) throw appError('INVALID_STATE', `Issuer ${resolved.issuer.id} is disabled`);
  if (resolved.profile && !resolved.profile.enabled) throw appError('INVALID_STATE', `Profile ${resolved.profile.id} is disabled`);
  return resolved;
}

/** Whether a certificate has ever been issued (has a stored version). */
export async function hasVersions(db: Knex | Knex.Transaction, certificateId: string): Promise<boolean> {
  return Boolean(await db('certificate_versions').where({ certificate_id: certificateId }).first('id'));
}
