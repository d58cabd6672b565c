import crypto from 'node:crypto';
import { CryptoError, type OcspSignRequest } from './crypto-types.js';
import { bitStringBytes, children, contentOf, explicit, oid, pemToDer, readTlv, seq, tlv } from './der.js';
import { signatureAlgorithmOf } from './leaf-template.js';

/**
 * BasicOCSPResponse (RFC 6960 4.2.1) written directly to DER and signed with the
 * delegated responder key. What depends only on the responder (its key, key hash,
 * algorithm and certificate) is prepared once per worker; a response is then a
 * few concatenations and one signature.
 */

interface Responder {
  key: crypto.KeyObject;
  hash: string | null;
  algorithmIdentifier: Buffer;
  /** responderID byKey: [2] EXPLICIT OCTET STRING (SHA-1 of the responder's public key). */
  responderId: Buffer;
  /** certs [0] EXPLICIT SEQUENCE OF Certificate: the responder certificate, so clients can check the delegation. */
  certs: Buffer;
}

const RESPONDERS = new Map<string, Responder>();

function responderOf(certPem: string, keyPem: string): Responder {
  const id = crypto.createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex');
  const hit = RESPONDERS.get(id);
  if (hit) return hit;
  const certDer = pemToDer(certPem, /CERTIFICATE/);
  const key = crypto.createPrivateKey(keyPem);
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  const [, keyBits] = children(spki, readTlv(spki, 0));
  const responder: Responder = {
    key, ...signatureAlgorithmOf(key),
    responderId: explicit(2, tlv(0x04, crypto.createHash('sha1').update(contentOf(spki, keyBits).subarray(1)).digest())),
    certs: explicit(0, seq(certDer)),
  };
  RESPONDERS.set(id, responder);
  if (RESPONDERS.size > 64) RESPONDERS.delete(RESPONDERS.keys().next().value!);
  return responder;
}

const pad2 = (n: number) => String(n).padStart(2, '0');
/** GeneralizedTime, whole seconds (RFC 6960 uses GeneralizedTime throughout). */
export function generalizedTime(ms: number): Buffer {
  const d = new Date(ms);
  const text = `${d.getUTCFullYear()}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}Z`;
  return tlv(0x18, Buffer.from(text, 'latin1'));
}

const GOOD = Buffer.from([0x80, 0x00]);
const UNKNOWN = Buffer.from([0x82, 0x00]);
const BASIC = oid('1.3.6.1.5.5.7.48.1.1');

/** A complete OCSPResponse (status successful) carrying a signed BasicOCSPResponse. */
export function signOcspResponse(req: OcspSignRequest): Uint8Array {
  if (!req.responses?.length) throw new CryptoError('bad_request', 'no responses to sign');
  const r = responderOf(req.responderCertPem, req.responderKeyPem);
  const singles = req.responses.map((s) => {
    let status: Buffer;
    if (s.status === 'good') status = GOOD;
    else if (s.status === 'unknown') status = UNKNOWN;
    else {
      const reason = s.reasonCode ? [explicit(0, tlv(0x0a, Buffer.from([s.reasonCode])))] : [];
      status = tlv(0xa1, Buffer.concat([generalizedTime(s.revokedAt ?? 0), ...reason]));
    }
    return seq(Buffer.from(s.certIdDer), status, generalizedTime(s.thisUpdate), explicit(0, generalizedTime(s.nextUpdate)));
  });
  const extensions = req.nonceExtension?.length ? [explicit(1, seq(Buffer.from(req.nonceExtension)))] : [];
  const tbs = seq(r.responderId, generalizedTime(req.producedAt), seq(...singles), ...extensions);
  const signature = crypto.sign(r.hash, tbs, r.key);
  const basic = seq(tbs, r.algorithmIdentifier, bitStringBytes(signature), r.certs);
  return seq(tlv(0x0a, Buffer.from([0])), explicit(0, seq(BASIC, tlv(0x04, basic))));
}

/** OCSPResponse without a body: malformedRequest (1), internalError (2), tryLater (3), unauthorized (6). */
export const ocspErrorResponse = (status: 1 | 2 | 3 | 6): Buffer => Buffer.from([0x30, 0x03, 0x0a, 0x01, status]);
