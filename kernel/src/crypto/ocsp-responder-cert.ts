import crypto from 'node:crypto';
import { CryptoError, type OcspResponderRequest, type OcspResponderResult } from './crypto-types.js';
import {
  bitStringBytes, boolTrue, children, contentOf, derToPem, explicit, implicitPrim, nullDer, octetString, oid, pemToDer, readTlv, seq, set, smallInteger, tlv, x509Time,
} from './der.js';
import { buildIssuerTemplate } from './leaf-template.js';
import { normalizeSerial } from './sign-params.js';

/**
 * A delegated OCSP responder certificate (RFC 6960 4.2.2.2): signed by the CA,
 * EKU id-kp-OCSPSigning, and id-pkix-ocsp-nocheck so relying parties do not ask
 * about the responder itself. Its key is a fresh P-256 key made here; the caller
 * seals it before it is stored. A CA key never leaves this pool.
 */

const ext = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [boolTrue] : []), octetString(value));

/** A Name with one CN (UTF8String). */
const commonName = (cn: string) => seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));

export function issueOcspResponder(req: OcspResponderRequest): OcspResponderResult {
  if (!(req.notAfter > req.notBefore)) throw new CryptoError('bad_request', 'notAfter must be after notBefore');
  const cn = String(req.subject ?? '').trim();
  if (!cn || cn.length > 64) throw new CryptoError('bad_request', 'subject must be a CN of 1 to 64 characters');
  const issuer = buildIssuerTemplate(pemToDer(req.issuerCertPem, /CERTIFICATE/), crypto.createPrivateKey(req.issuerKeyPem));
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const [, keyBits] = children(spki, readTlv(spki, 0));
  const ski = crypto.createHash('sha1').update(contentOf(spki, keyBits).subarray(1)).digest();
  const extensions = explicit(3, seq(
    ext('2.5.29.19', true, seq()),
    ext('2.5.29.15', true, tlv(0x03, Buffer.from([0x07, 0x80]))),
    ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.9'))),
    ext('1.3.6.1.5.5.7.48.1.5', false, nullDer),
    ext('2.5.29.14', false, octetString(ski)),
    ext('2.5.29.35', false, seq(implicitPrim(0, issuer.keyId))),
  ));
  const tbs = seq(
    explicit(0, smallInteger(2)),
    tlv(0x02, Buffer.from(normalizeSerial(req.serialNumberHex), 'hex')),
    issuer.algorithmIdentifier,
    issuer.subjectDer,
    seq(x509Time(new Date(req.notBefore)), x509Time(new Date(req.notAfter))),
    commonName(cn),
    spki,
    extensions,
  );
  const signature = crypto.sign(issuer.hash, tbs, issuer.signingKey);
  const der = seq(tbs, issuer.algorithmIdentifier, bitStringBytes(signature));
  return { certificatePem: derToPem(der, 'CERTIFICATE'), keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}
