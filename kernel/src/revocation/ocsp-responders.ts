import type { Knex } from 'knex';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { CaKeystore } from '../ca/ca-keystore.js';
import type { KernelServices } from '../kernel-services.js';
import { newId } from '../db/ids.js';

/** A delegated responder certificate lives this long ... */
export const RESPONDER_LIFETIME_MS = 30 * 86_400_000;
/** ... and is replaced once less than this is left, so clients never see an expired one. */
export const RESPONDER_ROTATE_BEFORE_MS = 10 * 86_400_000;
const CACHE_MS = 60_000;

export interface ResponderRow {
  id: string;
  ca_id: string;
  issuer_id: string;
  certificate_pem: string;
  encrypted_key: string;
  serial_number: string;
  not_before: Date;
  not_after: Date;
  status: 'active' | 'retired';
}

interface CaForResponder {
  id: string;
  issuer_id: string;
  subject: string;
  not_after: Date;
}

/**
 * One delegated OCSP responder per CA (RFC 6960 4.2.2.2): made on first need,
 * replaced before it expires (by the CRL loop, or by the first request that finds
 * it due), never outliving its CA. Replicas race safely: a partial unique index
 * keeps one active responder per CA and the loser reads the winner's.
 */
export class OcspResponders {
  private readonly cache = new Map<string, { row: ResponderRow; at: number }>();
  private readonly inflight = new Map<string, Promise<ResponderRow>>();

  constructor(private readonly k: KernelServices, private readonly keystore: CaKeystore) {}

  /** The CA's active responder, made or replaced when missing or due. */
  async forCa(ca: CaForResponder, now = Date.now()): Promise<ResponderRow> {
    const hit = this.cache.get(ca.id);
    if (hit && now - hit.at < CACHE_MS && !this.due(hit.row, ca, now)) return hit.row;
    let pending = this.inflight.get(ca.id);
    if (!pending) {
      pending = this.ensure(ca, now).finally(() => this.inflight.delete(ca.id));
      this.inflight.set(ca.id, pending);
    }
    return pending;
  }

  /** The responder's key, opened for one signing in the crypto pool. */
  keyOf(row: ResponderRow): string {
    return this.k.cipher.decrypt(row.encrypted_key);
  }

  private due(row: ResponderRow, ca: CaForResponder, now: number): boolean {
    const end = new Date(row.not_after).getTime();
    // A responder cut short by its CA's expiry is not replaced over and over.
    const cappedByCa = end >= new Date(ca.not_after).getTime() - 1000;
    return end <= now || (!cappedByCa && end - now < RESPONDER_ROTATE_BEFORE_MS);
  }

  private async ensure(ca: CaForResponder, now: number): Promise<ResponderRow> {
    const knex = this.k.db.knex;
    const current = (await knex('ocsp_responders').where({ ca_id: ca.id, status: 'active' }).first()) as ResponderRow | undefined;
    if (current && !this.due(current, ca, now)) return this.remember(current, now);
    const notAfter = Math.min(now + RESPONDER_LIFETIME_MS, new Date(ca.not_after).getTime());
    const cn = /CN=([^,]+)/.exec(ca.subject)?.[1]?.trim() ?? ca.issuer_id;
    const made = await this.keystore.issueOcspResponder(ca.id, { subject: `${cn} OCSP Responder`.slice(0, 64), notBefore: now - 60_000, notAfter });
    const row = {
      id: newId('ocspResponder'), ca_id: ca.id, issuer_id: ca.issuer_id, certificate_pem: made.certificatePem,
      encrypted_key: this.k.cipher.encrypt(made.keyPem), serial_number: made.serialNumberHex, not_before: new Date(now - 60_000), not_after: new Date(notAfter), status: 'active',
    };
    const installed = await knex.transaction(async (trx: Knex.Transaction) => {
      if (current) {
        const n = await trx('ocsp_responders').where({ id: current.id, status: 'active' }).update({ status: 'retired' });
        if (n !== 1) return null;
      }
      const inserted = (await trx.raw(
        `INSERT INTO ocsp_responders (id, ca_id, issuer_id, certificate_pem, encrypted_key, serial_number, not_before, not_after, status)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active') ON CONFLICT (ca_id) WHERE status = 'active' DO NOTHING RETURNING *`,
        [row.id, row.ca_id, row.issuer_id, row.certificate_pem, row.encrypted_key, row.serial_number, row.not_before, row.not_after],
      )) as { rows: ResponderRow[] };
      const got = inserted.rows[0] ?? null;
      if (got) {
        await this.k.audit.append({
          category: 'lifecycle', ...SYSTEM_ACTOR, action: 'ocsp_responder_created', resource_type: 'certificate_authority', resource_id: ca.id,
          details: { issuer_id: ca.issuer_id, responder_id: got.id, serial_number: got.serial_number, not_after: new Date(notAfter).toISOString(), replaces: current?.id ?? null },
        }, trx);
      }
      return got;
    });
    if (installed) return this.remember(installed, now);
    // Another replica replaced it first: use theirs.
    const winner = (await knex('ocsp_responders').where({ ca_id: ca.id, status: 'active' }).first()) as ResponderRow | undefined;
    if (!winner) throw new Error(`no OCSP responder for CA ${ca.id}`);
    return this.remember(winner, now);
  }

  private remember(row: ResponderRow, now: number): ResponderRow {
    this.cache.set(row.ca_id, { row, at: now });
    return row;
  }
}
