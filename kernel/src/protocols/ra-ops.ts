import type { Json } from '@certctl/sdk';
import { CaError } from '../ca/ca-errors.js';
import type { KernelServices } from '../kernel-services.js';
import { openEnvelope, parseBer, RaCmsError, RESERVED_SIGNED_ATTRIBUTES, signAsRa, type SignedAttributeInput } from './ra-cms.js';
import { RaKeystore } from './ra-keystore.js';

/*
 * ctx.issuance.raCertificate / raDecrypt / raSign: the RA of an issuer, used by
 * protocol plugins (SCEP) without the RA key ever entering them. Requests are
 * unchecked JSON from plugin code and are rebuilt here from known fields.
 */

type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const OID = /^[0-2](\.(0|[1-9][0-9]{0,9})){1,20}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_MESSAGE = 256 * 1024;
const MAX_ATTRIBUTES = 16;
const MAX_VALUE = 4096;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const base64 = (v: unknown, max: number): Buffer | null => (typeof v === 'string' && v.length <= Math.ceil(max / 3) * 4 && BASE64.test(v) ? Buffer.from(v, 'base64') : null);

function issuerOf(raw: Json): Parsed<string> {
  if (!isRecord(raw) || typeof raw.issuerId !== 'string' || !ID.test(raw.issuerId)) return { ok: false, problem: 'issuerId must be an issuer id' };
  return { ok: true, value: raw.issuerId };
}

function parseAttributes(raw: unknown): Parsed<SignedAttributeInput[]> {
  if (raw === undefined) return { ok: true, value: [] };
  if (!Array.isArray(raw) || raw.length > MAX_ATTRIBUTES) return { ok: false, problem: `signedAttributes must be an array of at most ${MAX_ATTRIBUTES}` };
  const out: SignedAttributeInput[] = [];
  for (const a of raw) {
    if (!isRecord(a) || typeof a.type !== 'string' || !OID.test(a.type)) return { ok: false, problem: 'each signed attribute needs a dotted OID `type`' };
    if (RESERVED_SIGNED_ATTRIBUTES.has(a.type)) return { ok: false, problem: `attribute ${a.type} is set by the kernel` };
    if (!Array.isArray(a.valuesBase64) || a.valuesBase64.length < 1 || a.valuesBase64.length > 4) return { ok: false, problem: 'each signed attribute needs 1 to 4 valuesBase64' };
    const values: Buffer[] = [];
    for (const v of a.valuesBase64) {
      const der = base64(v, MAX_VALUE);
      if (!der?.length) return { ok: false, problem: `attribute ${a.type}: each value must be base64 DER of at most ${MAX_VALUE} bytes` };
      try {
        parseBer(der, `attribute ${a.type}`);
      } catch (err) {
        return { ok: false, problem: (err as Error).message };
      }
      values.push(der);
    }
    out.push({ type: a.type, values });
  }
  return { ok: true, value: out };
}

export type RaOp = 'issuance.raCertificate' | 'issuance.raDecrypt' | 'issuance.raSign';

export class RaOps {
  readonly keystore: RaKeystore;

  constructor(k: () => KernelServices) {
    this.keystore = new RaKeystore(k);
  }

  /**
   * Runs one RA op. `refuse` turns a bad request into the capability error the
   * plugin sees. A CA that the kernel does not keep (an external issuer) cannot
   * sign an RA certificate: that is a refusal naming the issuer, not a crash.
   * `issuerChain` reports the issuer's CA chain today (from its plugin).
   */
  async handle(op: RaOp, request: Json, refuse: (message: string) => Error, issuerChain: (issuerId: string) => Promise<string[]>): Promise<Json> {
    const issuer = issuerOf(request);
    if (!issuer.ok) throw refuse(issuer.problem);
    const issuerId = issuer.value;
    const req = request as Record<string, unknown>;
    try {
      switch (op) {
        case 'issuance.raCertificate': {
          const ra = await this.keystore.ensure(issuerId, await issuerChain(issuerId));
          return { certificatePem: ra.certificatePem, chainPem: ra.chainPem };
        }
        case 'issuance.raDecrypt': {
          const der = base64(req.envelopedDataBase64, MAX_MESSAGE);
          if (!der?.length) throw refuse(`envelopedDataBase64 must be base64 DER of at most ${MAX_MESSAGE} bytes`);
          const ras = await this.keystore.unexpiredWithKeys(issuerId);
          try {
            return { ok: true, contentBase64: openEnvelope(der, ras).toString('base64') };
          } catch (err) {
            if (err instanceof RaCmsError) return { ok: false, code: err.code, reason: err.message };
            throw err;
          }
        }
        case 'issuance.raSign': {
          const content = req.contentBase64 === undefined || req.contentBase64 === null ? null : base64(req.contentBase64, MAX_MESSAGE);
          if (content === null && req.contentBase64 !== undefined && req.contentBase64 !== null) throw refuse(`contentBase64 must be base64 of at most ${MAX_MESSAGE} bytes`);
          const attributes = parseAttributes(req.signedAttributes);
          if (!attributes.ok) throw refuse(attributes.problem);
          const ra = (await this.keystore.latest(issuerId)) ?? (await this.keystore.ensure(issuerId, await issuerChain(issuerId)));
          const signed = signAsRa({ content, attributes: attributes.value, certificatePem: ra.certificatePem, key: await this.keystore.keyOf(ra.id) });
          return { signedDataBase64: signed.toString('base64') };
        }
      }
    } catch (err) {
      if (err instanceof CaError && (err.code === 'ca_missing' || err.code === 'ca_expired')) throw refuse(`issuer ${issuerId} has no usable CA kept by the kernel (${err.message}); an RA needs an issuer whose CA the kernel holds, such as local-ca`);
      throw err;
    }
  }
}
