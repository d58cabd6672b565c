import type { Knex } from 'knex';
import type { PluginEntry } from '../plugins/catalog.js';
import type { CertificateRow } from '../resources/certificates/certificate-model.js';
import type { KernelServices } from '../kernel-services.js';
import { refused } from './issuance-failure.js';
import { compiledOnce } from './issuance-sql.js';
import { applicablePoliciesQuery, type PolicyRow } from './policy-engine.js';
import type { ProfileRules } from './profile-enforcement.js';

export interface IssuerRow {
  id: string;
  name: string;
  type: string;
  enabled: boolean;
  /** The stored config columns, handed to the plugin host so it need not read the row again. */
  config: unknown;
  encrypted_config: string | null;
}

/** Everything an issuance reads before it asks the CA: the certificate, its profile, its issuer and the issuer's plugin. */
export interface IssuanceContext {
  cert: CertificateRow;
  profile: ProfileRules | null;
  /** The enabled policies that apply to the certificate (policy-engine.ts applicablePoliciesQuery), by id. */
  policies: PolicyRow[];
  issuer: IssuerRow;
  plugin: PluginEntry;
}

type ContextRow = CertificateRow & { issuer_row: IssuerRow | null; profile_row: ProfileRules | null; policy_rows: PolicyRow[] };

/**
 * One round trip for many issuances: each certificate with its issuer and
 * profile rows and its applicable policies (as JSON) beside it. The only
 * parameter is the id list, so PostgreSQL settles on one generic plan.
 */
const contextRows = compiledOnce<ContextRow>('certctl_issuance_contexts', (db, certificateIds) => db('managed_certificates as c')
  .leftJoin('issuers as i', 'i.id', 'c.issuer_id')
  .leftJoin('certificate_profiles as p', 'p.id', 'c.profile_id')
  .whereRaw('c.id = ANY(?::text[])', [certificateIds])
  .select('c.*', db.raw('CASE WHEN i.id IS NULL THEN NULL ELSE json_build_object(\'id\', i.id, \'name\', i.name, \'type\', i.type, \'enabled\', i.enabled, \'config\', i.config, \'encrypted_config\', i.encrypted_config) END AS issuer_row'),
    db.raw('CASE WHEN p.id IS NULL THEN NULL ELSE row_to_json(p) END AS profile_row'),
    db.raw('(SELECT coalesce(json_agg(ap ORDER BY ap.id), \'[]\'::json) FROM (?) AS ap) AS policy_rows', [applicablePoliciesQuery(db, db.raw('c.id'))])));

/** Most certificates one context statement reads. */
const MAX_IDS = 500;

interface Waiter {
  resolve: (row: ContextRow | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Issuances start in bursts (a group commit releases several callers at once,
 * a renewal sweep starts many): the contexts asked for in one turn of the event
 * loop are read by one statement instead of one each, which saves the database
 * and the kernel a round trip per certificate. A lone issuance waits for
 * nothing more than the end of the current turn.
 */
class ContextReader {
  private pending = new Map<string, Waiter[]>();
  private scheduled = false;

  constructor(private readonly db: Knex) {}

  read(certificateId: string): Promise<ContextRow | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(certificateId);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(certificateId, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = [...this.pending];
    this.pending = new Map();
    for (let i = 0; i < all.length; i += MAX_IDS) {
      const part = all.slice(i, i + MAX_IDS);
      contextRows(this.db, part.map(([id]) => id)).then(
        (rows) => {
          const byId = new Map(rows.map((r) => [r.id, r]));
          for (const [id, waiters] of part) for (const w of waiters) w.resolve(byId.get(id));
        },
        (err: unknown) => {
          for (const [, waiters] of part) for (const w of waiters) w.reject(err);
        },
      );
    }
  }
}

const readers = new WeakMap<Knex, ContextReader>();

function contextReader(db: Knex): ContextReader {
  let r = readers.get(db);
  if (!r) {
    r = new ContextReader(db);
    readers.set(db, r);
  }
  return r;
}

/** Certificates that can no longer get a new version. */
const CLOSED_STATUSES = new Set(['Revoked', 'Archived']);

/**
 * Loads and checks what an issuance needs. Anything that makes issuing
 * impossible until an operator acts (certificate gone, revoked or archived, no
 * issuer, issuer or profile disabled, the issuer's plugin missing or disabled)
 * is a refusal: retrying would not help.
 */
export async function loadIssuanceContext(k: Pick<KernelServices, 'plugins'>, db: Knex, certificateId: string): Promise<IssuanceContext> {
  const row = await contextReader(db).read(certificateId);
  if (!row) throw refused(`certificate ${certificateId} does not exist`);
  const { issuer_row: issuer, profile_row: profile, policy_rows: policies, ...cert } = row;
  if (CLOSED_STATUSES.has(cert.status)) throw refused(`certificate ${certificateId} is ${cert.status}`);
  if (!cert.issuer_id) throw refused(`certificate ${certificateId} has no issuer`);
  if (!issuer) throw refused(`issuer ${cert.issuer_id} does not exist`);
  if (!issuer.enabled) throw refused(`issuer ${issuer.id} is disabled`);
  if (cert.profile_id && !profile) throw refused(`profile ${cert.profile_id} does not exist`);
  if (profile && !profile.enabled) throw refused(`profile ${profile.id} is disabled`);
  const plugin = k.plugins.get(issuer.type);
  if (!plugin) throw refused(`issuer ${issuer.id} uses plugin ${issuer.type}, which is not installed`);
  if (plugin.status !== 'enabled') throw refused(`issuer ${issuer.id}'s plugin ${issuer.type} is disabled: ${plugin.reason ?? 'unknown reason'}`);
  if (plugin.kind !== 'issuer') throw refused(`plugin ${issuer.type} is a ${plugin.kind ?? 'unknown'} plugin, not an issuer`);
  return { cert, profile: profile ?? null, policies: policies ?? [], issuer, plugin };
}
