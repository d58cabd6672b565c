import crypto from 'node:crypto';
import type { CaKeystore } from '../ca/ca-keystore.js';
import { PUBLISHING_STATUSES } from '../ca/ca-store.js';
import { packCrlEntries } from '../crypto/crl-encoder.js';
import type { KernelServices } from '../kernel-services.js';

/** A CRL is valid for a day (the seeds' 24 hours) and re-signed when half of that has passed. */
export const CRL_VALIDITY_MS = 24 * 3_600_000;
const REFRESH_AFTER_MS = CRL_VALIDITY_MS / 2;
/** Revocations arriving together are published in one new CRL. */
const DEBOUNCE_MS = 200;
const MEMORY_MS = 2_000;

export interface CrlState {
  ca_id: string;
  issuer_id: string;
  crl_number: string;
  this_update: Date;
  next_update: Date;
  entries: number;
  der: Buffer;
  etag: string;
}

interface CaRef {
  id: string;
  issuer_id: string;
}

/**
 * CRLs per kernel CA: the scheduler loop keeps each one fresh (missing, older than
 * the last revocation, or past half its validity) and every revocation asks for a
 * new one soon after (debounced). CRL numbers are handed out atomically before
 * signing, and a stored CRL is only ever replaced by a higher number, so numbers
 * stay monotonic across replicas. Expired certificates and short-lived ones
 * (lifetime under an hour) are left out.
 */
export class CrlService {
  private readonly memory = new Map<string, { at: number; state: CrlState }>();
  private readonly firstGeneration = new Map<string, Promise<CrlState>>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  generated = 0;

  constructor(private readonly k: KernelServices, private readonly keystore: CaKeystore) {}

  /** Asks for a regeneration of the stale CRLs shortly (after a revocation). */
  soon(): void {
    if (this.timer || this.k.isDraining()) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runCycle().catch((err: unknown) => this.k.log.warn({ err }, 'CRL regeneration failed'));
    }, DEBOUNCE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One generation cycle: re-signs every CRL that is missing, stale or behind a revocation. */
  async runCycle(signal?: AbortSignal): Promise<{ generated: number }> {
    // Single-flight in this process: a cycle asked for during one runs after it.
    while (this.running) await this.running.catch(() => {});
    const run = this.cycle(signal);
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = null;
    }
  }

  private async cycle(signal?: AbortSignal): Promise<{ generated: number }> {
    const knex = this.k.db.knex;
    const refreshBefore = new Date(Date.now() + CRL_VALIDITY_MS - REFRESH_AFTER_MS);
    const due = (await knex('certificate_authorities as ca').leftJoin('crl_state as s', 's.ca_id', 'ca.id')
      .whereIn('ca.status', PUBLISHING_STATUSES)
      .where((w) => {
        w.whereNull('s.crl_number').orWhere('s.next_update', '<', refreshBefore)
          .orWhereExists(knex('certificate_revocations as r').whereRaw('r.ca_id = ca.id').whereRaw('r.created_at > s.read_at'))
          // A revocation whose transaction began before the last CRL read but committed after it
          // carries an older created_at: the count of live entries catches it (and expiries too).
          .orWhereRaw(`s.entries <> (SELECT count(*) FROM certificate_revocations r WHERE r.ca_id = ca.id AND NOT r.short_lived AND r.not_after > now())`);
      })
      .select('ca.id', 'ca.issuer_id')) as CaRef[];
    let generated = 0;
    for (const ca of due) {
      if (signal?.aborted) break;
      await this.generate(ca);
      generated++;
    }
    return { generated };
  }

  /** Signs and stores a new CRL for the CA now. */
  async generate(ca: CaRef): Promise<CrlState> {
    const knex = this.k.db.knex;
    const started = new Date();
    const readAt = ((await knex.raw('SELECT clock_timestamp() AS at')) as { rows: { at: Date }[] }).rows[0].at;
    const rows = (await knex('certificate_revocations').where({ ca_id: ca.id, short_lived: false }).where('not_after', '>', started)
      .select('serial_number', 'revoked_at', 'reason_code')) as { serial_number: string; revoked_at: Date; reason_code: number }[];
    const packed = packCrlEntries(rows.map((r) => ({ serialHex: r.serial_number, revokedAtMs: new Date(r.revoked_at).getTime(), reasonCode: r.reason_code })));
    const numbered = (await knex.raw(
      `INSERT INTO crl_state (ca_id, issuer_id, next_number) VALUES (?, ?, 2)
       ON CONFLICT (ca_id) DO UPDATE SET next_number = crl_state.next_number + 1
       RETURNING next_number - 1 AS number`,
      [ca.id, ca.issuer_id],
    )) as { rows: { number: string | number }[] };
    const crlNumber = String(numbered.rows[0].number);
    // thisUpdate is when the revocations were read: anything later shows up in the next one.
    const thisUpdate = Math.floor(started.getTime() / 1000) * 1000;
    const nextUpdate = thisUpdate + CRL_VALIDITY_MS;
    const signed = await this.keystore.signCrl(ca.id, { ...packed, crlNumber, thisUpdate, nextUpdate });
    const der = Buffer.from(signed.der);
    const etag = crypto.createHash('sha256').update(der).digest('base64url').slice(0, 27);
    await knex('crl_state').where({ ca_id: ca.id })
      .where((w) => { w.whereNull('crl_number').orWhere('crl_number', '<', crlNumber); })
      .update({ crl_number: crlNumber, this_update: new Date(thisUpdate), next_update: new Date(nextUpdate), entries: signed.entries, read_at: readAt, der, etag, updated_at: new Date() });
    this.generated++;
    const state: CrlState = { ca_id: ca.id, issuer_id: ca.issuer_id, crl_number: crlNumber, this_update: new Date(thisUpdate), next_update: new Date(nextUpdate), entries: signed.entries, der, etag };
    this.forget(ca.issuer_id);
    this.k.log.info({ ca_id: ca.id, issuer_id: ca.issuer_id, crl_number: crlNumber, entries: signed.entries, bytes: der.length, ms: Date.now() - started.getTime() }, 'CRL generated');
    return state;
  }

  /**
   * The current CRL of the issuer's active CA, or of one of its CAs by id (standby CAs
   * above the issuing one, and retiring CAs that keep publishing for what they signed), generating the first one on demand;
   * null if there is no such kernel CA.
   */
  async current(issuerId: string, caId?: string): Promise<CrlState | null> {
    const memoKey = caId ? `${issuerId}|${caId}` : issuerId;
    const hit = this.memory.get(memoKey);
    if (hit && Date.now() - hit.at < MEMORY_MS && hit.state.next_update.getTime() > Date.now()) return hit.state;
    const knex = this.k.db.knex;
    const ca = (await knex('certificate_authorities').where({ issuer_id: issuerId })
      .where(caId ? { id: caId } : { status: 'active' }).whereIn('status', PUBLISHING_STATUSES).first('id', 'issuer_id')) as CaRef | undefined;
    if (!ca) return null;
    const row = (await knex('crl_state').where({ ca_id: ca.id }).whereNotNull('der').first()) as (CrlState & { next_update: Date }) | undefined;
    let state: CrlState;
    if (row && new Date(row.next_update).getTime() > Date.now()) {
      state = { ...row, crl_number: String(row.crl_number), this_update: new Date(row.this_update), next_update: new Date(row.next_update), der: Buffer.from(row.der) };
    } else {
      // Concurrent first fetches (or fetches of an expired CRL) share one generation.
      let pending = this.firstGeneration.get(ca.id);
      if (!pending) {
        pending = this.generate(ca).finally(() => this.firstGeneration.delete(ca.id));
        this.firstGeneration.set(ca.id, pending);
      }
      state = await pending;
    }
    this.memory.set(memoKey, { at: Date.now(), state });
    return state;
  }

  forget(issuerId: string): void {
    for (const key of this.memory.keys()) if (key === issuerId || key.startsWith(`${issuerId}|`)) this.memory.delete(key);
  }
}
