import crypto, { webcrypto, X509Certificate } from 'node:crypto';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import { CaError } from '../ca/ca-errors.js';
import { newId } from '../db/ids.js';
import { x509 } from '../crypto/x509-setup.js';
import type { KernelServices } from '../kernel-services.js';

/*
 * The registration-authority (RA) keys of enrolment protocols (migration 016): one
 * RSA-2048 key and certificate per protocol plugin and issuer, signed by the
 * issuer's kernel-kept CA, made on first use. Per plugin, so one protocol plugin
 * cannot open what clients encrypted for another (SCEP requests carry challenge
 * passwords). The private key is sealed with the config cipher at rest and
 * opened only inside this process for one decryption or signature; it is never
 * returned, logged or handed to a plugin.
 */

export interface RaRow {
  id: string;
  plugin_id: string;
  issuer_id: string;
  certificate_pem: string;
  chain_pem: string[] | string;
  encrypted_key: string;
  not_before: Date;
  not_after: Date;
}

/** Whose RA: the protocol plugin using it and the issuer whose CA certifies it. */
export interface RaOwner {
  pluginId: string;
  issuerId: string;
}

const ownerKey = (o: RaOwner) => `${o.pluginId}\u0000${o.issuerId}`;
const ownerRows = (k: KernelServices, o: RaOwner) => k.db.knex('protocol_ra_keys').where({ plugin_id: o.pluginId, issuer_id: o.issuerId });

export interface RaCredentials {
  id: string;
  certificatePem: string;
  /** The issuer's CA chain, issuing CA first. */
  chainPem: string[];
  notAfter: Date;
}

const DAY_MS = 86_400_000;
const RA_VALIDITY_MS = 365 * DAY_MS;
/** A new RA is made once the current one has less than this left. */
const ROTATE_AHEAD_MS = 30 * DAY_MS;
/** How long a checked current RA is reused before the database and the issuer's CA are looked at again. */
const CACHE_MS = 30_000;
/** RFC 6402 id-kp-cmcRA: the certificate belongs to a registration authority. */
const EKU_CMC_RA = '1.3.6.1.5.5.7.3.28';

const chainOf = (row: RaRow): string[] => (typeof row.chain_pem === 'string' ? (JSON.parse(row.chain_pem) as string[]) : row.chain_pem);
const credentialsOf = (row: RaRow): RaCredentials => ({ id: row.id, certificatePem: row.certificate_pem, chainPem: chainOf(row), notAfter: new Date(row.not_after) });

/** Whether `certPem` was signed by the first certificate of `chainPem` (the issuer's CA today). */
function signedByCurrentCa(certPem: string, chainPem: string[]): boolean {
  if (!chainPem.length) return false;
  try {
    const ca = new X509Certificate(chainPem[0]);
    const cert = new X509Certificate(certPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

export class RaKeystore {
  private readonly current = new Map<string, { creds: RaCredentials; at: number }>();
  private readonly inflight = new Map<string, Promise<RaCredentials>>();

  constructor(private readonly k: () => KernelServices) {}

  /**
   * The issuer's current RA, made (or replaced) when there is none, it is close to
   * expiry, or the issuer's CA changed since it was signed. `caChainPem` is the
   * issuer's chain as its plugin reports it today.
   */
  async ensure(owner: RaOwner, caChainPem: string[]): Promise<RaCredentials> {
    const key = ownerKey(owner);
    const hit = this.current.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS && this.fresh(hit.creds, caChainPem)) return hit.creds;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.ensureOnce(owner, caChainPem).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    const creds = await pending;
    this.current.set(key, { creds, at: Date.now() });
    return creds;
  }

  /**
   * Every unexpired RA of the issuer, newest made first, each with a function
   * opening its key: the candidates for decrypting a client's message; the first
   * signs replies. (Newest made, not latest to expire: an RA made for a new CA that
   * ends sooner is still the current one.)
   */
  async unexpiredWithKeys(owner: RaOwner): Promise<Array<RaCredentials & { key: () => crypto.KeyObject }>> {
    const rows = (await ownerRows(this.k(), owner).whereRaw('not_after > now()').orderBy('created_at', 'desc')) as RaRow[];
    return rows.map((row) => ({ ...credentialsOf(row), key: () => this.open(row) }));
  }

  /** The RA that signs a reply: the newest unexpired one, made first when there is none. */
  async signer(owner: RaOwner, caChain: () => Promise<string[]>): Promise<RaCredentials & { key: () => crypto.KeyObject }> {
    const newest = () => ownerRows(this.k(), owner).whereRaw('not_after > now()').orderBy('created_at', 'desc').first() as Promise<RaRow | undefined>;
    let row = await newest();
    if (!row) {
      await this.ensure(owner, await caChain());
      row = await newest();
    }
    if (!row) throw new CaError('ca_expired', `issuer ${owner.issuerId} has no unexpired RA`);
    const found = row;
    return { ...credentialsOf(found), key: () => this.open(found) };
  }

  private open(row: RaRow): crypto.KeyObject {
    return crypto.createPrivateKey({ key: Buffer.from(this.k().cipher.decrypt(row.encrypted_key), 'base64'), format: 'der', type: 'pkcs8' });
  }

  /** Signed by the issuer's CA of today, and not yet due for replacement (an RA cut short by its CA's own end stays until then). */
  private fresh(creds: RaCredentials, caChainPem: string[]): boolean {
    if (!signedByCurrentCa(creds.certificatePem, caChainPem)) return false;
    const end = creds.notAfter.getTime();
    if (end <= Date.now()) return false;
    const caEnd = Date.parse(new X509Certificate(caChainPem[0]).validTo);
    return end - Date.now() > ROTATE_AHEAD_MS || end >= caEnd - 1000;
  }

  private async ensureOnce(owner: RaOwner, caChainPem: string[]): Promise<RaCredentials> {
    const row = (await ownerRows(this.k(), owner).orderBy('created_at', 'desc').first()) as RaRow | undefined;
    if (row && this.fresh(credentialsOf(row), caChainPem)) return credentialsOf(row);
    return this.create(owner, row?.id ?? null);
  }

  /**
   * A new RSA key and a certificate for it from the issuer's CA (digitalSignature +
   * keyEncipherment, EKU id-kp-cmcRA). Two replicas racing here each make one; both
   * are valid RAs of the issuer, and the newer is served.
   */
  private async create(owner: RaOwner, replacing: string | null): Promise<RaCredentials> {
    const k = this.k();
    const { pluginId, issuerId } = owner;
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=${`certctl ${pluginId} RA ${issuerId}`.slice(0, 64)}`,
      keys: keys as never,
      signingAlgorithm: alg,
    });
    const signed = await k.caKeystore.sign(issuerId, {
      csrPem: csr.toString('pem'),
      notAfter: new Date(Date.now() + RA_VALIDITY_MS).toISOString(),
      keyUsage: ['digitalSignature', 'keyEncipherment'],
      extendedKeyUsage: [EKU_CMC_RA],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const id = newId('raKey');
    const newRow = {
      id,
      plugin_id: pluginId,
      issuer_id: issuerId,
      certificate_pem: signed.certificatePem,
      chain_pem: JSON.stringify(signed.chainPem),
      encrypted_key: k.cipher.encrypt(pkcs8.toString('base64')),
      not_before: new Date(signed.notBefore),
      not_after: new Date(signed.notAfter),
    };
    await k.db.knex.transaction(async (trx) => {
      await trx('protocol_ra_keys').insert(newRow);
      await k.audit.append({
        category: 'lifecycle', ...SYSTEM_ACTOR, action: 'ra_certificate_created', resource_type: 'issuer', resource_id: issuerId,
        details: { ra_id: id, plugin_id: pluginId, serial_number: signed.serialNumberHex, not_after: signed.notAfter, fingerprint_sha256: signed.fingerprintSha256, ...(replacing ? { replaces: replacing } : {}) },
      }, trx);
    });
    k.log.info({ plugin_id: pluginId, issuer_id: issuerId, ra_id: id, not_after: signed.notAfter }, 'made a new RA certificate for enrolment protocols');
    return { id, certificatePem: signed.certificatePem, chainPem: signed.chainPem, notAfter: new Date(signed.notAfter) };
  }
}
