import type { Knex } from 'knex';
import type { CaKeyAlgorithm } from '@certctl/sdk';
import { actorOf, SYSTEM_ACTOR, type AuditActor } from '../audit/audit-log.js';
import type { Principal } from '../auth/principal.js';
import { appError } from '../errors.js';
import type { KernelServices } from '../kernel-services.js';
import { authorityKeyIdOf } from '../revocation/leaf-facts.js';
import { certificateFacts, parseSubject } from './ca-certificate.js';
import { CaError } from './ca-errors.js';
import { randomSerialHex } from './ca-serial.js';
import { CaStore, type CaRow } from './ca-store.js';
import { caView, type CaView } from './ca-view.js';
import { generateChildCa } from './child-ca-certificate.js';
import { parseNameConstraints } from './name-constraints.js';

export interface CreateChildCa {
  parent_id?: string;
  subject: string;
  key_algorithm?: CaKeyAlgorithm;
  validity_days?: number;
  path_len_constraint?: number | null;
  name_constraints?: unknown;
  activate?: boolean;
}

const DAY = 86_400_000;
const DEFAULT_VALIDITY_DAYS = 1825;
/** Leaves are read newest-expiry first in pages when finding what a retiring CA still vouches for. */
const DRAIN_PAGE = 500;

/**
 * CA hierarchies under an issuer: child CAs made and signed in the kernel (keys
 * sealed like every generated CA key), activation of the issuing CA, and
 * drain-first retirement. Every change writes its audit event in its transaction.
 */
export class CaHierarchy {
  private readonly store: CaStore;

  constructor(private readonly k: KernelServices) {
    this.store = new CaStore(k.db.knex);
  }

  private get knex(): Knex {
    return this.k.db.knex;
  }

  private view(row: CaRow): CaView {
    return caView(row, this.k.config.publicBaseUrl);
  }

  private async issuer(issuerId: string): Promise<{ type: string }> {
    const row = (await this.knex('issuers').where({ id: issuerId }).first('type')) as { type: string } | undefined;
    if (!row) throw appError('NOT_FOUND', `issuer ${issuerId} not found`);
    return row;
  }

  /**
   * The issuer's issuing CA, made first when the issuer has none yet: its plugin is
   * asked for its CA chain, which makes the CA its own config describes (ctx.ca.ensure).
   */
  private async issuingCa(issuerId: string, type: string): Promise<CaRow> {
    const current = await this.store.active(issuerId);
    if (current) return current;
    try {
      await this.k.pluginHost.call(type, issuerId, 'getCaChain', {});
    } catch (err) {
      throw appError('INVALID_STATE', `issuer ${issuerId} has no CA and its plugin could not make one: ${(err as Error).message}`);
    }
    const made = await this.store.active(issuerId);
    if (!made) throw appError('INVALID_STATE', `issuer ${issuerId} (${type}) keeps no CA in the kernel: only a Local CA issuer can hold a CA hierarchy`);
    return made;
  }

  private async caOf(issuerId: string, caId: string): Promise<CaRow> {
    const row = await this.store.byId(caId);
    if (!row || row.issuer_id !== issuerId) throw appError('NOT_FOUND', `issuer ${issuerId} has no CA ${caId}`);
    return row;
  }

  /** The issuer's CAs, parents before children (roots first), then newest first. */
  async tree(issuerId: string): Promise<CaView[]> {
    await this.issuer(issuerId);
    const rows = await this.store.forIssuer(issuerId);
    const byParent = new Map<string | null, CaRow[]>();
    const ids = new Set(rows.map((r) => r.id));
    for (const r of rows) {
      const p = r.parent_id && ids.has(r.parent_id) ? r.parent_id : null;
      byParent.set(p, [...(byParent.get(p) ?? []), r]);
    }
    const out: CaView[] = [];
    const walk = (parent: string | null) => {
      for (const r of byParent.get(parent) ?? []) {
        out.push(this.view(r));
        walk(r.id);
      }
    };
    walk(null);
    return out;
  }

  async get(issuerId: string, caId: string): Promise<CaView> {
    return this.view(await this.caOf(issuerId, caId));
  }

  /** A new CA signed by `parent_id` (default: the issuer's issuing CA), standby unless `activate`. */
  async create(issuerId: string, body: CreateChildCa, principal: Principal): Promise<CaView> {
    const { type } = await this.issuer(issuerId);
    const nc = parseNameConstraints(body.name_constraints);
    if (!nc.ok) throw appError('VALIDATION_FAILED', nc.problem, { details: [{ path: 'name_constraints', message: nc.problem }] });
    try {
      parseSubject(body.subject);
    } catch (err) {
      throw appError('VALIDATION_FAILED', (err as Error).message, { details: [{ path: 'subject', message: (err as Error).message }] });
    }
    const parent = body.parent_id ? await this.caOf(issuerId, body.parent_id) : await this.issuingCa(issuerId, type);
    if (parent.status !== 'active' && parent.status !== 'standby') throw appError('INVALID_STATE', `CA ${parent.id} is ${parent.status}: only an active or standby CA may sign a new CA`);

    const keystore = this.k.caKeystore;
    const { chain } = await keystore.chainOf(parent);
    const validated = keystore.validate(chain);
    if (validated instanceof CaError) throw appError('INVALID_STATE', `CA ${parent.id} cannot sign: ${validated.message}`);
    // Path length: with the child below it, every CA of the parent's chain has one more CA under it.
    const allowed = validated.pathBudget - 1;
    if (allowed < 0) throw appError('INVALID_STATE', `CA ${parent.id} (${parent.subject}) may not sign CA certificates: a pathLenConstraint in its chain allows no further CA below it`);
    const requested = body.path_len_constraint ?? undefined;
    if (requested !== undefined && requested > allowed) {
      const msg = `path_len_constraint ${requested} is more than the ${allowed} the parent chain allows below this CA`;
      throw appError('VALIDATION_FAILED', msg, { details: [{ path: 'path_len_constraint', message: msg }] });
    }
    const pathLength = requested ?? (Number.isFinite(allowed) ? allowed : undefined);

    const now = Date.now();
    // A child never outlives the chain that vouches for it.
    const notAfter = Math.min(now + (body.validity_days ?? DEFAULT_VALIDITY_DAYS) * DAY, validated.validUntil);
    const keyAlgorithm = body.key_algorithm ?? 'ECDSA-P256';
    const base = this.k.config.publicBaseUrl;
    let made;
    try {
      made = await generateChildCa(parent.certificate_pem, await keystore.keyOf(parent), {
        subject: body.subject, keyAlgorithm, notAfter, nameConstraints: nc.value, serialNumberHex: randomSerialHex(), now,
        ...(pathLength !== undefined ? { pathLength } : {}),
        ...(base ? { crlUrl: `${base}/.well-known/pki/crl/${encodeURIComponent(issuerId)}/${encodeURIComponent(parent.id)}` } : {}),
      });
    } catch (err) {
      if (err instanceof CaError) throw appError('INVALID_STATE', err.message);
      throw err;
    }
    // The new certificate is validated as it will be used before it is stored.
    const checked = keystore.validate([made.certificatePem, ...chain]);
    if (checked instanceof CaError) throw appError('INTERNAL', `the new CA certificate did not validate: ${checked.message}`);
    const f = certificateFacts(made.certificatePem);
    const actor = actorOf(principal);
    const created = await this.knex.transaction(async (trx) => {
      // Re-read under a row lock: a retirement of the parent racing this request either
      // waits for this child (and then sees it) or has already moved the parent on. (Not a
      // share lock: two creations that both move an active parent aside would deadlock.)
      const locked = (await trx('certificate_authorities').where({ id: parent.id }).forUpdate().first('status')) as { status: string } | undefined;
      if (locked?.status !== 'active' && locked?.status !== 'standby') throw appError('CONFLICT', `CA ${parent.id} changed meanwhile (now ${locked?.status ?? 'gone'}); nothing was created`);
      const current = body.activate ? await this.store.active(issuerId, trx) : null;
      if (current && !(await this.store.move(current.id, 'active', 'standby', trx))) throw appError('CONFLICT', 'the issuing CA changed meanwhile; try again');
      const row = await this.store.insert({
        issuer_id: issuerId, parent_id: parent.id, subject: f.subject, source: 'generated', key_algorithm: keyAlgorithm,
        certificate_pem: made.certificatePem, chain_pem: null, encrypted_key: this.k.cipher.encrypt(made.keyPem),
        serial_number: f.serialNumber, subject_key_id: f.subjectKeyId, fingerprint_sha256: f.fingerprintSha256, not_before: f.notBefore, not_after: f.notAfter,
      }, body.activate ? 'active' : 'standby', trx);
      await this.k.audit.append([
        {
          category: 'lifecycle', ...actor, action: 'ca_created', resource_type: 'certificate_authority', resource_id: row.id,
          details: { issuer_id: issuerId, parent_id: parent.id, source: 'generated', subject: row.subject, key_algorithm: keyAlgorithm, fingerprint_sha256: row.fingerprint_sha256, not_after: row.not_after.toISOString(), path_len_constraint: pathLength ?? null, name_constraints: nc.value, status: row.status },
        },
        ...(current ? [activationEvent(actor, issuerId, row.id, current.id)] : []),
      ], trx);
      return row;
    });
    this.changed(issuerId);
    this.k.log.info({ issuer_id: issuerId, ca_id: created.id, parent_id: parent.id, subject: created.subject, status: created.status }, 'child CA created');
    return this.view(created);
  }

  /** Makes a standby CA the issuer's issuing CA; the previous one goes to standby. */
  async activate(issuerId: string, caId: string, principal: Principal): Promise<CaView> {
    const target = await this.caOf(issuerId, caId);
    if (target.status !== 'standby') throw appError('INVALID_STATE', `CA ${caId} is ${target.status}: only a standby CA can be activated`);
    const validated = this.k.caKeystore.validate((await this.k.caKeystore.chainOf(target)).chain);
    if (validated instanceof CaError) throw appError('INVALID_STATE', `CA ${caId} cannot sign: ${validated.message}`);
    const actor = actorOf(principal);
    const row = await this.knex.transaction(async (trx) => {
      const current = await this.store.active(issuerId, trx);
      if (current && !(await this.store.move(current.id, 'active', 'standby', trx))) throw appError('CONFLICT', 'the issuing CA changed meanwhile; try again');
      if (!(await this.store.move(caId, 'standby', 'active', trx))) throw appError('CONFLICT', `CA ${caId} changed meanwhile; try again`);
      await this.k.audit.append(activationEvent(actor, issuerId, caId, current?.id ?? null), trx);
      return (await this.store.byId(caId, trx))!;
    });
    this.changed(issuerId);
    return this.view(row);
  }

  /**
   * Drain-first retirement: the CA signs nothing from now on (status retiring) but
   * keeps publishing its CRL and OCSP until everything it signed has expired, when
   * the ca-drain loop marks it retired. The issuing CA is refused (activate another
   * first), and so is a CA with children still in service.
   */
  async retire(issuerId: string, caId: string, principal: Principal): Promise<CaView> {
    const target = await this.caOf(issuerId, caId);
    if (target.status === 'active') throw appError('INVALID_STATE', `CA ${caId} is the issuer's issuing CA: activate another CA first (POST .../intermediates/{ca_id}/activate)`);
    if (target.status !== 'standby') throw appError('INVALID_STATE', `CA ${caId} is already ${target.status}`);
    const drainUntil = await this.lastExpiry(target);
    const actor = actorOf(principal);
    const row = await this.knex.transaction(async (trx) => {
      if (!(await this.store.move(caId, 'standby', 'retiring', trx, { retiring_at: trx.fn.now(), drain_until: drainUntil }))) throw appError('CONFLICT', `CA ${caId} changed meanwhile; try again`);
      // After the move (which waits for a child being created under this CA to commit), so such a child is seen.
      const live = (await this.store.liveChildren(caId, trx)).filter((c) => c.status === 'active' || c.status === 'standby');
      if (live.length) throw appError('INVALID_STATE', `CA ${caId} still has CAs in service below it (${live.map((c) => c.id).join(', ')}): retire them first`);
      await this.k.audit.append({
        category: 'lifecycle', ...actor, action: 'ca_retiring', resource_type: 'certificate_authority', resource_id: caId,
        details: { issuer_id: issuerId, drain_until: drainUntil?.toISOString() ?? null },
      }, trx);
      return (await this.store.byId(caId, trx))!;
    });
    this.changed(issuerId);
    return this.view(row);
  }

  /**
   * The latest expiry among the unexpired certificates CA `ca` signed (issued
   * versions whose AKI is its SKI, and revocations recorded against it), or null.
   */
  async lastExpiry(ca: CaRow): Promise<Date | null> {
    const revoked = (await this.knex('certificate_revocations').where({ ca_id: ca.id }).where('not_after', '>', new Date()).max({ at: 'not_after' }).first()) as { at: Date | string | null } | undefined;
    let latest = revoked?.at ? new Date(revoked.at) : null;
    // Without an SKI its leaves cannot be told apart: it drains until its own expiry, which none outlives.
    if (!ca.subject_key_id) return ca.not_after > new Date() ? ca.not_after : latest;
    for (let offset = 0; ; offset += DRAIN_PAGE) {
      const page = (await this.knex('certificate_versions as v').join('managed_certificates as c', 'c.id', 'v.certificate_id')
        .where('c.issuer_id', ca.issuer_id).where('v.not_after', '>', new Date()).where('v.created_at', '>=', new Date(ca.created_at.getTime() - 60_000))
        .orderBy('v.not_after', 'desc').orderBy('v.id').offset(offset).limit(DRAIN_PAGE).select('v.pem_chain', 'v.not_after')) as { pem_chain: string | null; not_after: Date | string }[];
      const hit = page.find((v) => v.pem_chain && authorityKeyIdOf(v.pem_chain) === ca.subject_key_id);
      if (hit) {
        const at = new Date(hit.not_after);
        if (!latest || at > latest) latest = at;
        break;
      }
      if (page.length < DRAIN_PAGE) break;
    }
    return latest;
  }

  /**
   * One pass of the ca-drain loop: a retiring CA whose drain time has come is
   * retired when it has no CA below it still publishing and nothing it signed is
   * still valid; otherwise its drain time moves to the new latest expiry (a leaf
   * signed by another replica just before the retirement reached it).
   */
  async drain(signal?: AbortSignal): Promise<{ retired: string[] }> {
    const due = ((await this.knex('certificate_authorities').where({ status: 'retiring' })
      .where((w) => { w.whereNull('drain_until').orWhere('drain_until', '<=', new Date()); })) as CaRow[]);
    const retired: string[] = [];
    for (const raw of due) {
      if (signal?.aborted) break;
      const ca = (await this.store.byId(raw.id))!;
      if ((await this.store.liveChildren(ca.id)).length) continue;
      const expired = ca.not_after.getTime() <= Date.now();
      const until = expired ? null : await this.lastExpiry(ca);
      await this.knex.transaction(async (trx) => {
        if (until) {
          await trx('certificate_authorities').where({ id: ca.id, status: 'retiring' }).update({ drain_until: until, updated_at: trx.fn.now() });
          return;
        }
        if (!(await this.store.move(ca.id, 'retiring', 'retired', trx, { retired_at: trx.fn.now() }))) return;
        await this.k.audit.append({ category: 'lifecycle', ...SYSTEM_ACTOR, action: 'ca_retired', resource_type: 'certificate_authority', resource_id: ca.id, details: { issuer_id: ca.issuer_id } }, trx);
        retired.push(ca.id);
      });
      if (!until) this.changed(ca.issuer_id);
    }
    return { retired };
  }

  private changed(issuerId: string): void {
    this.k.caKeystore.forget(issuerId);
  }
}

function activationEvent(actor: AuditActor, issuerId: string, caId: string, previous: string | null) {
  return { category: 'lifecycle' as const, ...actor, action: 'ca_activated', resource_type: 'certificate_authority', resource_id: caId, details: { issuer_id: issuerId, previous_ca_id: previous } };
}
