import crypto, { X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import forge from 'node-forge';
import * as pkijs from 'pkijs';
import { CMS_CONTENT_CIPHERS, type CmsContentCipher } from '@certctl/sdk';

/*
 * The CMS (RFC 5652) pieces of SCEP that need no RA key: reading a client's
 * SignedData and checking its signature, certs-only "degenerate" SignedData, and
 * an EnvelopedData for the client (RSA key transport to the client's own
 * certificate, the client's content cipher). Anything needing the RA key is a kernel call.
 */

export const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  rsaEncryption: '1.2.840.113549.1.1.1',
  messageDigest: '1.2.840.113549.1.9.4',
  challengePassword: '1.2.840.113549.1.9.7',
  subjectKeyIdentifier: '2.5.29.14',
};

const DIGESTS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '1.2.840.113549.2.5': 'md5',
};

const ab = (b: Buffer | Uint8Array): ArrayBuffer => new Uint8Array(b).slice().buffer;

/** Exactly one BER value, or null. */
function parseBer(der: Buffer): asn1js.AsnType | null {
  if (!der.length) return null;
  const parsed = asn1js.fromBER(ab(der));
  return parsed.offset === -1 || parsed.offset !== der.length ? null : parsed.result;
}

/** A pkijs object from DER, or null when the bytes are not that structure. */
export function pkiFrom<T>(der: Buffer, make: (schema: asn1js.AsnType) => T): T | null {
  const asn1 = parseBer(der);
  if (!asn1) return null;
  try {
    return make(asn1);
  } catch {
    return null;
  }
}

/** The bytes of an OCTET STRING, primitive or constructed. */
export const octets = (v: asn1js.OctetString): Buffer => Buffer.from(asn1js.OctetString.prototype.getValue.call(v));

const derOf = (v: { toSchema(): asn1js.AsnType }): Buffer => Buffer.from(v.toSchema().toBER(false));

/** The text of a string-typed value (PrintableString, UTF8String, IA5String...), else null. */
export function stringOf(v: unknown): string | null {
  const block = (v as { valueBlock?: { value?: unknown } })?.valueBlock;
  return typeof block?.value === 'string' ? block.value : null;
}

function subjectKeyId(cert: pkijs.Certificate): Buffer | null {
  const ext = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier);
  const inner = ext ? parseBer(Buffer.from(ext.extnValue.valueBlock.valueHexView)) : null;
  return inner instanceof asn1js.OctetString ? Buffer.from(inner.valueBlock.valueHexView) : null;
}

/** The certificate a SignerInfo's sid names, among `certs`. */
export function signerCertificate(signer: pkijs.SignerInfo, certs: pkijs.Certificate[]): pkijs.Certificate | null {
  const sid = signer.sid;
  if (sid instanceof pkijs.IssuerAndSerialNumber) return certs.find((c) => c.issuer.isEqual(sid.issuer) && c.serialNumber.isEqual(sid.serialNumber)) ?? null;
  const id = sid instanceof asn1js.Constructed || sid instanceof asn1js.Primitive ? Buffer.from((sid as asn1js.Primitive).valueBlock.valueHexView ?? []) : null;
  return id ? (certs.find((c) => subjectKeyId(c)?.equals(id)) ?? null) : null;
}

/**
 * Checks a SignerInfo's signature over its signed attributes (RFC 5652 5.4), and
 * that the messageDigest attribute is the digest of `content` (empty when absent).
 */
export function signatureValid(signer: pkijs.SignerInfo, cert: X509Certificate, content: Buffer | null): boolean {
  const hash = DIGESTS[signer.digestAlgorithm.algorithmId];
  const attrs = signer.signedAttrs;
  if (!hash || hash === 'md5' || !attrs) return false;
  const digestAttr = attrs.attributes.find((a) => a.type === OID.messageDigest);
  const claimed = digestAttr?.values[0] instanceof asn1js.OctetString ? octets(digestAttr.values[0]) : null;
  const actual = crypto.createHash(hash).update(content ?? Buffer.alloc(0)).digest();
  if (!claimed || !claimed.equals(actual)) return false;
  // The signature covers the attributes as a SET OF: their received encoding with the [0] tag swapped for SET.
  const signed = Buffer.from(attrs.encodedValue.byteLength ? attrs.encodedValue : attrs.toSchema().toBER(false));
  signed[0] = 0x31;
  try {
    return crypto.verify(hash, signed, cert.publicKey, Buffer.from(signer.signature.valueBlock.valueHexView));
  } catch {
    return false;
  }
}

/** The DER of every certificate in these PEM texts, in order. */
export const pemDers = (pems: string[]): Buffer[] => pems.flatMap((pem) => [...pem.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64')));

/** A certs-only SignedData (no signers) carrying `certificatesDer`, as a DER ContentInfo. */
export function certsOnly(certificatesDer: Buffer[]): Buffer {
  const signed = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data }),
    certificates: certificatesDer.map((der) => pkijs.Certificate.fromBER(ab(der))),
    signerInfos: [],
  });
  return derOf(new pkijs.ContentInfo({ contentType: OID.signedData, content: signed.toSchema() }));
}

function encrypt(cipher: CmsContentCipher, key: Buffer, iv: Buffer, content: Buffer): Buffer {
  // Single DES is only in OpenSSL 3's legacy provider; node-forge has it.
  if (cipher === 'des-cbc') {
    const c = forge.cipher.createCipher('DES-CBC', forge.util.createBuffer(key.toString('binary')));
    c.start({ iv: forge.util.createBuffer(iv.toString('binary')) });
    c.update(forge.util.createBuffer(content.toString('binary')));
    c.finish();
    return Buffer.from(c.output.getBytes(), 'binary');
  }
  const c = crypto.createCipheriv(cipher, key, iv);
  return Buffer.concat([c.update(content), c.final()]);
}

/**
 * An EnvelopedData of `content` for the holder of `recipientDer` (an RSA
 * certificate): content encryption `cipher` (the one the client's request used, so a
 * weak one only answers a client that chose it), the key wrapped with
 * RSAES-PKCS1-v1_5 (what SCEP clients implement), the recipient named by issuer
 * and serial number.
 */
export function envelopeFor(recipientDer: Buffer, content: Buffer, cipher: CmsContentCipher): Buffer {
  const cert = pkijs.Certificate.fromBER(ab(recipientDer));
  const alg = CMS_CONTENT_CIPHERS[cipher];
  const key = crypto.randomBytes(alg.keyLength);
  const iv = crypto.randomBytes(alg.ivLength);
  const encrypted = encrypt(cipher, key, iv, content);
  const wrapped = crypto.publicEncrypt({ key: new X509Certificate(recipientDer).publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, key);
  const env = new pkijs.EnvelopedData({
    version: 0,
    recipientInfos: [new pkijs.RecipientInfo({
      variant: 1,
      value: new pkijs.KeyTransRecipientInfo({
        version: 0,
        rid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
        keyEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsaEncryption, algorithmParams: new asn1js.Null() }),
        encryptedKey: new asn1js.OctetString({ valueHex: ab(wrapped) }),
      }),
    })],
    encryptedContentInfo: new pkijs.EncryptedContentInfo({
      contentType: OID.data,
      contentEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: alg.oid, algorithmParams: new asn1js.OctetString({ valueHex: ab(iv) }) }),
      // One primitive string (DER): some clients do not read the constructed form.
      encryptedContent: new asn1js.OctetString({ valueHex: ab(encrypted) }),
      disableSplit: true,
    }),
  });
  return derOf(new pkijs.ContentInfo({ contentType: OID.envelopedData, content: env.toSchema() }));
}
