import type { Knex } from 'knex';
import { newId } from '../db/ids.js';

export type CaSource = 'generated' | 'configured';
/** `active`: the issuer's issuing CA; `standby`: in service, signs no leaves; `retiring`: draining; `retired`. */
export type CaStatus = 'active' | 'standby' | 'retiring' | 'retired';
/** Statuses whose CA still publishes revocation (CRL and OCSP). */
export const PUBLISHING_STATUSES: readonly CaStatus[] = ['active', 'standby', 'retiring'];

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
  retiring_at?: Date | null;
  drain_until?: Date | null;
  retired_at?: Date | null;
}

export type NewCaRow = Omit<CaRow, 'id' | 'status' | 'created_at' | 'updated_at' | 'retiring_at' | 'drain_until' | 'retired_at'>;

const asDate = (v: unknown) => (v instanceof Date ? v : new Date(String(v)));
const asDateOrNull = (v: unknown) => (v === null || v === undefined ? null : asDate(v));
const normalise = (r: CaRow): CaRow => ({
  ...r, not_before: asDate(r.not_before), not_after: asDate(r.not_after), created_at: asDate(r.created_at), updated_at: asDate(r.updated_at),
  retiring_at: asDateOrNull(r.retiring_at), drain_until: asDateOrNull(r.drain_until), retired_at: asDateOrNull(r.retired_at),
});

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
      [newId('ca'), row.issuer_id, row.parent_id, row.subject, row.source, row.key_algorithm, row.certificate_pem, row.chain_pem, row.encrypted_key,
        row.serial_number, row.subject_key_id, row.fingerprint_sha256, row.not_before, row.not_after],
    );
    const inserted = (result as { rows: CaRow[] }).rows[0];
    return inserted ? normalise(inserted) : null;
  }

  /** Inserts a CA with the given status (a child CA: `standby`, or `active` once the previous active one was moved aside in `trx`). */
  async insert(row: NewCaRow, status: 'active' | 'standby', trx: Knex.Transaction): Promise<CaRow> {
    const [inserted] = (await trx('certificate_authorities').insert({ id: newId('ca'), ...row, status }).returning('*')) as CaRow[];
    return normalise(inserted);
  }

  /** Moves CA `id` from one status to another; false when it was no longer in `from` (another caller changed it). */
  async move(id: string, from: CaStatus, to: CaStatus, trx: Knex.Transaction, extra: Record<string, unknown> = {}): Promise<boolean> {
    const n = await trx('certificate_authorities').where({ id, status: from }).update({ status: to, updated_at: trx.fn.now(), ...extra });
    return n === 1;
  }

  /** CAs directly below `id` that are still in service (active or standby) or draining. */
  async liveChildren(id: string, db: Knex = this.knex): Promise<CaRow[]> {
    return ((await db('certificate_authorities').where({ parent_id: id }).whereNot({ status: 'retired' })) as CaRow[]).map(normalise);
  }

  /** Moves an active CA to `retiring`; false when it is no longer the active one. */
  async retire(id: string, trx: Knex.Transaction): Promise<boolean> {
    return this.move(id, 'active', 'retiring', trx, { retiring_at: trx.fn.now() });
  }
}
