import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { CaEnsureRequest, CaInfo, CaSignRequest, CaSignResult } from '@certctl/sdk';
import { SYSTEM_ACTOR, type AuditLog } from '../audit/audit-log.js';
import type { CryptoService } from '../crypto/crypto-service.js';
import type { CrlRequest, CrlResult, OcspResponderRequest, OcspResponderResult } from '../crypto/crypto-types.js';
import { pemCertificates } from '../crypto/der.js';
import type { ConfigCipher } from '../secrets/config-cipher.js';
import { BACKDATE_MS, certificateFacts, generateRootCa } from './ca-certificate.js';
import { validateCaChain, type ValidatedChain } from './ca-chain.js';
import { CaError, fromCryptoError } from './ca-errors.js';
import { checkLeafNames } from './leaf-names.js';
import { randomSerialHex } from './ca-serial.js';
import { CaStore, type CaRow, type NewCaRow } from './ca-store.js';
import { loadConfiguredCa, readConfiguredKey, type ConfiguredCaPaths } from './configured-ca.js';
import { adaptiveKeyUsage, csrKeyType } from './leaf-key-usage.js';

export interface CaKeystoreOptions {
  knex: Knex;
  cipher: ConfigCipher;
  audit: AuditLog;
  crypto: Pick<CryptoService, 'signCertificate' | 'encodeCrl' | 'issueOcspResponder'>;
  log: Logger;
  /** CERTCTL_CA_CERT_PATH / CERTCTL_CA_KEY_PATH, for `configured` CAs. */
  configured: ConfiguredCaPaths;
  /**
   * How long an issuer's active CA (certificate and sealed key, never the clear
   * key) is reused from memory before the database (and, for a configured CA, the
   * operator's certificate file) is read again. Default 5 s.
   */
  cacheMs?: number;
  now?: () => number;
  /**
   * CERTCTL_PUBLIC_BASE_URL: when set, leaves get the kernel's CRL distribution
   * point and OCSP responder URLs for their issuer (not short-lived ones, which
   * are left out of CRLs and OCSP; see kernel/src/revocation).
   */
  publicBaseUrl?: string;
}

/** Certificates living less than this skip CRL/OCSP (lifecycle-sql.ts SHORT_LIVED_SECONDS). */
const SHORT_LIVED_MS = 3_600_000;

/**
 * Where relying parties fetch revocation for certificates signed by CA `caId` of an
 * issuer: that CA's own CRL (stable for the certificate's life, whichever CA is
 * active later) and the issuer's OCSP responder (which finds the CA from the CertID).
 */
export function revocationUrls(publicBaseUrl: string, issuerId: string, caId: string): { crl: string; ocsp: string } {
  return { crl: crlUrl(publicBaseUrl, issuerId, caId), ocsp: `${publicBaseUrl}/.well-known/pki/ocsp/${encodeURIComponent(issuerId)}` };
}

/** CA `caId`'s own CRL; without `caId`, the issuer's URL, which serves its active CA's CRL. */
export function crlUrl(publicBaseUrl: string, issuerId: string, caId?: string): string {
  return `${publicBaseUrl}/.well-known/pki/crl/${encodeURIComponent(issuerId)}${caId === undefined ? '' : `/${encodeURIComponent(caId)}`}`;
}

interface ActiveCa {
  row: CaRow;
  /** The CA certificate first, up to the root. */
  chain: string[];
  /** The highest CA of the chain kept here (the row itself for a root): decides which ensure() requests it fits. */
  top: CaRow;
  /** The chain's RFC 5280 validation (name constraints to apply), or why it cannot sign. */
  validated: ValidatedChain | CaError;
  at: number;
}

const MAX_CHAIN_DEPTH = 10;
/** A hierarchy built under the issuer's root (or the operator's sub-CA) fits the request that made that top CA. */
const fits = (ca: Pick<ActiveCa, 'top'>, request: CaEnsureRequest) => (request.source === 'generate' ? ca.top.source === 'generated' : ca.top.source === 'configured');

/**
 * The kernel's CA keystore: one CA per issuer instance, made or loaded on first
 * use (`ensure`) and used to sign leaf certificates in the crypto pool (`sign`).
 * Keys of generated CAs are sealed with the config cipher at rest and opened only
 * for the signature being made; a configured CA's key is read from the operator's
 * file for each signature. No key is cached in clear, logged or returned.
 *
 * Creation is race-safe across replicas: the new CA is inserted only if the
 * issuer has no active one (a partial unique index), and a caller that loses the
 * race returns the winner's CA. Calls in one process share one creation.
 */
export class CaKeystore {
  private readonly store: CaStore;
  private readonly active = new Map<string, ActiveCa>();
  private readonly inflight = new Map<string, Promise<ActiveCa>>();
  private readonly ownership = new Map<string, number>();
  private readonly warnedKeyFiles = new Set<string>();
  /** Chains already validated, by their certificates' fingerprints (validity is re-checked on use). */
  private readonly validatedChains = new Map<string, ValidatedChain>();
  private readonly cacheMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: CaKeystoreOptions) {
    this.store = new CaStore(opts.knex);
    this.cacheMs = opts.cacheMs ?? 5_000;
    this.now = opts.now ?? Date.now;
  }

  /** True when `issuerId` is an issuer instance of plugin `pluginId` (positive answers cached briefly). */
  async issuerBelongsTo(issuerId: string, pluginId: string): Promise<boolean> {
    const key = `${pluginId}\0${issuerId}`;
    const at = this.ownership.get(key);
    if (at !== undefined && this.now() - at < this.cacheMs) return true;
    const yes = await this.store.isIssuerOf(issuerId, pluginId);
    if (yes) this.ownership.set(key, this.now());
    else this.ownership.delete(key);
    return yes;
  }

  /** The issuer's CA: the active one when it fits the request, else a new one (replacing the old, which moves to `retiring`). */
  async ensure(issuerId: string, request: CaEnsureRequest): Promise<CaInfo> {
    const cached = this.cached(issuerId);
    if (cached && fits(cached, request)) return infoOf(cached);
    const key = `${issuerId}\0${request.source}`;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.ensureOnce(issuerId, request).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return infoOf(await pending);
  }

  /** Signs a leaf certificate for a CSR with the issuer's active CA. */
  async sign(issuerId: string, request: CaSignRequest): Promise<CaSignResult> {
    const ca = this.cached(issuerId) ?? (await this.load(issuerId));
    if (!ca) throw new CaError('ca_missing', `issuer ${issuerId} has no CA yet: call ca.ensure first`);
    const { row, validated } = ca;
    const now = this.now();
    if (row.not_after.getTime() <= now) throw new CaError('ca_expired', `the CA of issuer ${issuerId} (${row.subject}) expired on ${row.not_after.toISOString()}`);
    if (validated instanceof CaError) throw validated;
    if (validated.validUntil <= now) throw new CaError('ca_expired', `a CA certificate in the chain of issuer ${issuerId}'s CA (${row.subject}) has expired`);
    // Name constraints of every CA up the chain, before anything is signed (no-op for unconstrained chains).
    if (validated.constraints.length) checkLeafNames(validated.constraints, request);
    const notBefore = Math.max(request.notBefore ? Date.parse(request.notBefore) : now - BACKDATE_MS, row.not_before.getTime());
    // A certificate cannot outlive its CA: a later notAfter is capped (the result says what was used).
    const notAfter = Math.min(Date.parse(request.notAfter), row.not_after.getTime());
    if (notAfter <= now) throw new CaError('bad_request', `notAfter ${request.notAfter} is not in the future`);
    if (notAfter <= notBefore) throw new CaError('bad_request', 'notAfter must be after notBefore');
    const ekus = request.extendedKeyUsage ?? [];
    const keyUsage = request.keyUsage ?? adaptiveKeyUsage(csrKeyType(request.csrPem), ekus);
    const urls = this.opts.publicBaseUrl && notAfter - notBefore >= SHORT_LIVED_MS ? revocationUrls(this.opts.publicBaseUrl, issuerId, row.id) : null;

    let signed;
    try {
      signed = await this.opts.crypto.signCertificate({
        csrPem: request.csrPem,
        issuerCertPem: row.certificate_pem,
        issuerKeyPem: await this.keyOf(row),
        serialNumberHex: randomSerialHex(),
        notBefore: new Date(notBefore).toISOString(),
        notAfter: new Date(notAfter).toISOString(),
        ...(request.subject !== undefined ? { subject: request.subject } : {}),
        ...(request.sans !== undefined ? { sans: request.sans } : {}),
        extensions: {
          basicConstraints: { ca: false }, keyUsage: keyUsage as never, ...(ekus.length ? { extendedKeyUsage: ekus } : {}),
          ...(urls ? { crlDistributionPoints: [urls.crl], authorityInfoAccess: { ocsp: [urls.ocsp] } } : {}),
        },
      });
    } catch (err) {
      throw fromCryptoError(err);
    }
    return { ...signed, chainPem: ca.chain };
  }

  /** Signs a CRL with CA `caId`'s key in the crypto pool (the key never leaves the kernel and the pool). */
  async signCrl(caId: string, request: Omit<CrlRequest, 'issuerCertPem' | 'issuerKeyPem'>): Promise<CrlResult> {
    const row = await this.store.byId(caId);
    if (!row) throw new CaError('ca_missing', `CA ${caId} does not exist`);
    try {
      return await this.opts.crypto.encodeCrl({ ...request, issuerCertPem: row.certificate_pem, issuerKeyPem: await this.keyOf(row) });
    } catch (err) {
      throw fromCryptoError(err);
    }
  }

  /** A delegated OCSP responder certificate (and its fresh key) signed by CA `caId`. */
  async issueOcspResponder(caId: string, request: Omit<OcspResponderRequest, 'issuerCertPem' | 'issuerKeyPem' | 'serialNumberHex'>): Promise<OcspResponderResult & { serialNumberHex: string }> {
    const row = await this.store.byId(caId);
    if (!row) throw new CaError('ca_missing', `CA ${caId} does not exist`);
    const serialNumberHex = randomSerialHex();
    try {
      const made = await this.opts.crypto.issueOcspResponder({ ...request, serialNumberHex, issuerCertPem: row.certificate_pem, issuerKeyPem: await this.keyOf(row) });
      return { ...made, serialNumberHex };
    } catch (err) {
      throw fromCryptoError(err);
    }
  }

  /** Every CA the issuer has had, newest first, without keys (for the CA API and revocation). */
  async list(issuerId: string): Promise<Omit<CaRow, 'encrypted_key'>[]> {
    return (await this.store.forIssuer(issuerId)).map(({ encrypted_key: _sealed, ...rest }) => rest);
  }

  /** Forgets cached CAs (after an operator change, or in tests). */
  forget(issuerId?: string): void {
    if (issuerId === undefined) this.active.clear();
    else this.active.delete(issuerId);
  }

  private cached(issuerId: string): ActiveCa | null {
    const hit = this.active.get(issuerId);
    return hit && this.now() - hit.at < this.cacheMs ? hit : null;
  }

  private async load(issuerId: string): Promise<ActiveCa | null> {
    const row = await this.store.active(issuerId);
    return row ? this.remember(row) : null;
  }

  private async remember(row: CaRow): Promise<ActiveCa> {
    const { chain, top } = await this.chainOf(row);
    const entry = { row, chain, top, validated: this.validate(chain), at: this.now() };
    this.active.set(row.issuer_id, entry);
    return entry;
  }

  /** RFC 5280 validation of a chain, once per distinct chain (ca-chain.ts); the failure as a CaError value. */
  validate(chain: string[]): ValidatedChain | CaError {
    const key = chain.map((pem) => crypto.createHash('sha256').update(pem).digest('base64')).join('|');
    const hit = this.validatedChains.get(key);
    const now = this.now();
    if (hit && hit.validUntil > now && hit.validFrom <= now + 5 * 60_000) return hit;
    try {
      const result = validateCaChain(chain, now);
      if (this.validatedChains.size > 1000) this.validatedChains.clear();
      this.validatedChains.set(key, result);
      return result;
    } catch (err) {
      if (err instanceof CaError) return err;
      return new CaError('ca_invalid', `the CA chain cannot be read: ${(err as Error).message}`);
    }
  }

  /** The CA's certificate, then its parents kept here, then certificates above them from chain_pem; and the top row. */
  async chainOf(row: CaRow): Promise<{ chain: string[]; top: CaRow }> {
    const chain: string[] = [];
    let at: CaRow | null = row;
    let top = row;
    for (let depth = 0; at && depth < MAX_CHAIN_DEPTH; depth++) {
      top = at;
      chain.push(at.certificate_pem);
      if (!at.parent_id) {
        chain.push(...pemCertificates(at.chain_pem));
        break;
      }
      at = await this.store.byId(at.parent_id);
    }
    return { chain, top };
  }

  /**
   * The CA's private key (PEM), for one signature made in the kernel (CRLs,
   * responder and child CA certificates). Never handed to a plugin: the broker
   * exposes only ensure/sign/issuerBelongsTo.
   */
  async keyOf(row: CaRow): Promise<string> {
    if (row.source === 'configured') {
      this.warnIfKeyFileOpen();
      return readConfiguredKey(this.opts.configured);
    }
    try {
      return this.opts.cipher.decrypt(row.encrypted_key ?? '');
    } catch {
      throw new CaError('ca_invalid', `the key of CA ${row.id} cannot be decrypted: CERTCTL_CONFIG_ENCRYPTION_KEY differs from the one that sealed it`);
    }
  }

  private warnIfKeyFileOpen(): void {
    const file = this.opts.configured.keyPath;
    if (!file || this.warnedKeyFiles.has(file)) return;
    this.warnedKeyFiles.add(file);
    try {
      if (fs.statSync(file).mode & 0o077) this.opts.log.warn({ file }, 'CERTCTL_CA_KEY_PATH is readable by group or others; chmod 600 it');
    } catch {
      // Reading the key reports a missing file with its reason.
    }
  }

  private async ensureOnce(issuerId: string, request: CaEnsureRequest): Promise<ActiveCa> {
    const current = await this.store.active(issuerId);
    const currentCa = current ? await this.remember(current) : null;
    if (request.source === 'generate') {
      if (currentCa && fits(currentCa, request)) return currentCa;
      const serialNumberHex = randomSerialHex();
      const made = await generateRootCa({ ...request, serialNumberHex, now: this.now() });
      const facts = certificateFacts(made.certificatePem);
      return this.install(issuerId, current, request, {
        issuer_id: issuerId, parent_id: null, subject: facts.subject, source: 'generated', key_algorithm: request.keyAlgorithm,
        certificate_pem: made.certificatePem, chain_pem: null, encrypted_key: this.opts.cipher.encrypt(made.keyPem),
        serial_number: facts.serialNumber, subject_key_id: facts.subjectKeyId, fingerprint_sha256: facts.fingerprintSha256,
        not_before: facts.notBefore, not_after: facts.notAfter,
      });
    }
    const loaded = await loadConfiguredCa(this.opts.configured, this.now());
    // The operator's sub-CA is still the top of the active CA's chain (itself, or a hierarchy built under it).
    if (currentCa && currentCa.top.source === 'configured' && currentCa.top.fingerprint_sha256 === loaded.facts.fingerprintSha256) return currentCa;
    const { facts } = loaded;
    return this.install(issuerId, current, request, {
      issuer_id: issuerId, parent_id: null, subject: facts.subject, source: 'configured', key_algorithm: loaded.keyAlgorithm,
      certificate_pem: loaded.certificatePem, chain_pem: loaded.chainPem.join('') || null, encrypted_key: null,
      serial_number: facts.serialNumber, subject_key_id: facts.subjectKeyId, fingerprint_sha256: facts.fingerprintSha256,
      not_before: facts.notBefore, not_after: facts.notAfter,
    });
  }

  /**
   * Makes `row` the issuer's active CA, retiring `replacing` in the same
   * transaction (with audit events). When another caller changed the active CA
   * first, its CA is the answer if it fits the request; otherwise try again.
   */
  private async install(issuerId: string, replacing: CaRow | null, request: CaEnsureRequest, row: NewCaRow): Promise<ActiveCa> {
    const lost = new Error('lost the race');
    for (let attempt = 0; attempt < 3; attempt++) {
      let inserted: CaRow | null = null;
      try {
        inserted = await this.opts.knex.transaction(async (trx) => {
          if (replacing && !(await this.store.retire(replacing.id, trx))) throw lost;
          const created = await this.store.insertActive(row, trx);
          if (!created) throw lost;
          const details = { issuer_id: issuerId, source: created.source, subject: created.subject, key_algorithm: created.key_algorithm, fingerprint_sha256: created.fingerprint_sha256, not_after: created.not_after.toISOString() };
          await this.opts.audit.append([
            ...(replacing ? [{ category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'ca_retiring', resource_type: 'certificate_authority', resource_id: replacing.id, details: { issuer_id: issuerId, replaced_by: created.id } }] : []),
            { category: 'lifecycle' as const, ...SYSTEM_ACTOR, action: 'ca_created', resource_type: 'certificate_authority', resource_id: created.id, details: { ...details, ...(replacing ? { replaces: replacing.id } : {}) } },
          ], trx);
          return created;
        });
      } catch (err) {
        if (err !== lost) throw err;
      }
      if (inserted) {
        this.opts.log.info({ issuer_id: issuerId, ca_id: inserted.id, source: inserted.source, subject: inserted.subject, sha256: inserted.fingerprint_sha256, replaces: replacing?.id }, 'CA created');
        return this.remember(inserted);
      }
      const winner = await this.store.active(issuerId);
      const winnerCa = winner ? await this.remember(winner) : null;
      if (winnerCa && fits(winnerCa, request) && (row.source === 'generated' || winnerCa.top.fingerprint_sha256 === row.fingerprint_sha256)) return winnerCa;
      replacing = winner;
    }
    throw new CaError('unavailable', `the CA of issuer ${issuerId} kept changing while it was being set up; try again`);
  }
}

function infoOf(ca: ActiveCa): CaInfo {
  return {
    caId: ca.row.id,
    source: ca.row.source,
    certificatePem: ca.row.certificate_pem,
    chainPem: [...ca.chain],
    notBefore: ca.row.not_before.toISOString(),
    notAfter: ca.row.not_after.toISOString(),
  };
}
