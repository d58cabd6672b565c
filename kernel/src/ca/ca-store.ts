import crypto from 'node:crypto';
import type { Knex } from 'knex';

export type CaSource = 'generated' | 'configured';
export type CaStatus = 'active' | 'retiring' | 'retired';

/** One certificate_authorities row (dates as Date; encrypted_key is ciphertext or null). */
export interface CaRow {
  id: string;
  issuer_id: string;
  parent_id: string | null;
  subject: string;
  source: CaSource;
  key_algorithm: string;
  certificate_pem: string;
  chain_pem: string | null;
  encrypted_key: string | null;
  status: CaStatus;
  serial_number: string;
  subject_key_id: string | null;
  fingerprint_sha256: string;
  not_before: Date;
  not_after: Date;
  created_at: Date;
  updated_at: Date;
}

export type NewCaRow = Omit<CaRow, 'id' | 'status' | 'created_at' | 'updated_at'>;

export const newCaId = () => `ca-${crypto.randomBytes(8).toString('hex')}`;

const asDate = (v: unknown) => (v instanceof Date ? v : new Date(String(v)));
const normalise = (r: CaRow): CaRow => ({ ...r, not_before: asDate(r.not_before), not_after: asDate(r.not_after), created_at: asDate(r.created_at), updated_at: asDate(r.updated_at) });

/** SQL for the CA keystore. The partial unique index keeps one active CA per issuer across replicas. */
export class CaStore {
  constructor(private readonly knex: Knex) {}

  async active(issuerId: string, db: Knex = this.knex): Promise<CaRow | null> {
    const row = (await db('certificate_authorities').where({ issuer_id: issuerId, status: 'active' }).first()) as CaRow | undefined;
    return row ? normalise(row) : null;
  }

  async byId(id: string, db: Knex = this.knex): Promise<CaRow | null> {
    const row = (await db('certificate_authorities').where({ id }).first()) as CaRow | undefined;
    return row ? normalise(row) : null;
  }

  /** Every CA of an issuer, newest first (active, retiring and retired). */
  async forIssuer(issuerId: string): Promise<CaRow[]> {
    return ((await this.knex('certificate_authorities').where({ issuer_id: issuerId }).orderBy('created_at', 'desc')) as CaRow[]).map(normalise);
  }

  /** True when `issuerId` is an issuer instance of plugin `pluginId`. */
  async isIssuerOf(issuerId: string, pluginId: string): Promise<boolean> {
    return Boolean(await this.knex('issuers').where({ id: issuerId, type: pluginId }).first('id'));
  }

  /**
   * Inserts a new active CA unless the issuer already has one (another replica or
   * call won the race): returns the inserted row, or null when nothing was inserted.
   */
  async insertActive(row: NewCaRow, trx: Knex.Transaction): Promise<CaRow | null> {
    const result = await trx.raw(
      `INSERT INTO certificate_authorities
         (id, issuer_id, parent_id, subject, source, key_algorithm, certificate_pem, chain_pem, encrypted_key, status,
          serial_number, subject_key_id, fingerprint_sha256, not_before, not_after)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)
       ON CONFLICT (issuer_id) WHERE status = 'active' DO NOTHING
       RETURNING *`,
      [newCaId(), row.issuer_id, row.parent_id, row.subject, row.source, row.key_algorithm, row.certificate_pem, row.chain_pem, row.encrypted_key,
        row.serial_number, row.subject_key_id, row.fingerprint_sha256, row.not_before, row.not_after],
    );
    const inserted = (result as { rows: CaRow[] }).rows[0];
    return inserted ? normalise(inserted) : null;
  }

  /** Moves an active CA to `retiring`; false when it is no longer the active one. */
  async retire(id: string, trx: Knex.Transaction): Promise<boolean> {
    const n = await trx('certificate_authorities').where({ id, status: 'active' }).update({ status: 'retiring', updated_at: trx.fn.now() });
    return n === 1;
  }
}
