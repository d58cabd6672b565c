import type { Json } from '@certctl/sdk';
import { CaError } from '../ca/ca-errors.js';
import type { KernelServices } from '../kernel-services.js';
import { isEnvelopedData, openEnvelope, parseBer, RaCmsError, signAsRa, type SignedAttributeInput } from './ra-cms.js';
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
const MAX_VALUE = 4096;
/**
 * What the RA signs is bounded to a SCEP CertRep (RFC 8894 3.3.2), whatever the
 * calling plugin asks: signed attributes only from SCEP's set, each at most once,
 * messageType present and CertRep (an RA signature never makes a client request),
 * content absent or a CMS EnvelopedData, and eContentType always id-data (so
 * never a CMC PKIData, which is what an id-kp-cmcRA signature vouches for).
 */
const SCEP_ATTRIBUTES = new Set(['2', '3', '4', '5', '6', '7'].map((n) => `2.16.840.1.113733.1.9.${n}`));
const MESSAGE_TYPE = '2.16.840.1.113733.1.9.2';
/** PrintableString "3": messageType CertRep. */
const CERT_REP = Buffer.from([0x13, 0x01, 0x33]);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const base64 = (v: unknown, max: number): Buffer | null => (typeof v === 'string' && v.length <= Math.ceil(max / 3) * 4 && BASE64.test(v) ? Buffer.from(v, 'base64') : null);

function issuerOf(raw: Json): Parsed<string> {
  if (!isRecord(raw) || typeof raw.issuerId !== 'string' || !ID.test(raw.issuerId)) return { ok: false, problem: 'issuerId must be an issuer id' };
  return { ok: true, value: raw.issuerId };
}

function parseAttributes(raw: unknown): Parsed<SignedAttributeInput[]> {
  if (!Array.isArray(raw) || raw.length > SCEP_ATTRIBUTES.size) return { ok: false, problem: `signedAttributes must be an array of at most ${SCEP_ATTRIBUTES.size}` };
  const out: SignedAttributeInput[] = [];
  for (const a of raw) {
    if (!isRecord(a) || typeof a.type !== 'string' || !OID.test(a.type)) return { ok: false, problem: 'each signed attribute needs a dotted OID `type`' };
    if (!SCEP_ATTRIBUTES.has(a.type)) return { ok: false, problem: `attribute ${a.type} is not a SCEP attribute (the kernel sets contentType, signingTime and messageDigest)` };
    if (out.some((o) => o.type === a.type)) return { ok: false, problem: `attribute ${a.type} is given twice` };
    if (!Array.isArray(a.valuesBase64) || a.valuesBase64.length !== 1) return { ok: false, problem: 'each signed attribute needs exactly one value in valuesBase64' };
    const der = base64(a.valuesBase64[0], MAX_VALUE);
    if (!der?.length) return { ok: false, problem: `attribute ${a.type}: the value must be base64 DER of at most ${MAX_VALUE} bytes` };
    try {
      parseBer(der, `attribute ${a.type}`);
    } catch (err) {
      return { ok: false, problem: (err as Error).message };
    }
    out.push({ type: a.type, values: [der] });
  }
  if (!out.find((o) => o.type === MESSAGE_TYPE)?.values[0].equals(CERT_REP)) return { ok: false, problem: 'the RA signs only CertRep messages: messageType must be the PrintableString "3"' };
  return { ok: true, value: out };
}

export type RaOp = 'issuance.raCertificate' | 'issuance.raDecrypt' | 'issuance.raSign';

export class RaOps {
  readonly keystore: RaKeystore;

  constructor(k: () => KernelServices) {
    this.keystore = new RaKeystore(k);
  }

  /**
   * Runs one RA op for the calling plugin (each plugin has RAs of its own). `refuse` turns a bad request into the capability error the
   * plugin sees. A CA that the kernel does not keep (an external issuer) cannot
   * sign an RA certificate: that is a refusal naming the issuer, not a crash.
   * `issuerChain` reports the issuer's CA chain today (from its plugin).
   */
  async handle(pluginId: string, op: RaOp, request: Json, refuse: (message: string) => Error, issuerChain: (issuerId: string) => Promise<string[]>): Promise<Json> {
    const issuer = issuerOf(request);
    if (!issuer.ok) throw refuse(issuer.problem);
    const issuerId = issuer.value;
    const owner = { pluginId, issuerId };
    const req = request as Record<string, unknown>;
    try {
      switch (op) {
        case 'issuance.raCertificate': {
          const ra = await this.keystore.ensure(owner, await issuerChain(issuerId));
          return { certificatePem: ra.certificatePem, chainPem: ra.chainPem };
        }
        case 'issuance.raDecrypt': {
          const der = base64(req.envelopedDataBase64, MAX_MESSAGE);
          if (!der?.length) throw refuse(`envelopedDataBase64 must be base64 DER of at most ${MAX_MESSAGE} bytes`);
          const ras = await this.keystore.unexpiredWithKeys(owner);
          try {
            const opened = openEnvelope(der, ras);
            return { ok: true, contentBase64: opened.content.toString('base64'), contentCipher: opened.cipher };
          } catch (err) {
            if (err instanceof RaCmsError) return { ok: false, code: err.code, reason: err.message };
            throw err;
          }
        }
        case 'issuance.raSign': {
          const content = req.contentBase64 === undefined || req.contentBase64 === null ? null : base64(req.contentBase64, MAX_MESSAGE);
          if (content === null && req.contentBase64 !== undefined && req.contentBase64 !== null) throw refuse(`contentBase64 must be base64 of at most ${MAX_MESSAGE} bytes`);
          if (content && !isEnvelopedData(content)) throw refuse('contentBase64 must be a CMS EnvelopedData (DER ContentInfo): the reply for the client');
          const attributes = parseAttributes(req.signedAttributes);
          if (!attributes.ok) throw refuse(attributes.problem);
          const ra = await this.keystore.signer(owner, () => issuerChain(issuerId));
          const signed = signAsRa({ content, attributes: attributes.value, certificatePem: ra.certificatePem, key: ra.key() });
          return { signedDataBase64: signed.toString('base64') };
        }
      }
    } catch (err) {
      if (err instanceof CaError && (err.code === 'ca_missing' || err.code === 'ca_expired')) throw refuse(`issuer ${issuerId} has no usable CA kept by the kernel (${err.message}); an RA needs an issuer whose CA the kernel holds, such as local-ca`);
      throw err;
    }
  }
}
