import crypto, { X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import forge from 'node-forge';
import * as pkijs from 'pkijs';
import { CMS_CONTENT_CIPHERS, type CmsContentCipher } from '@certctl/sdk';

/*
 * The two CMS (RFC 5652) operations that need an RA private key: opening an
 * EnvelopedData addressed to the RA (RSA key transport), and signing a SignedData
 * as the RA. Structures are read and written with pkijs/asn1js; the RSA and
 * symmetric operations use node's crypto (node-forge only for single DES, which
 * OpenSSL 3 keeps in its legacy provider and old SCEP clients still send).
 */

export class RaCmsError extends Error {
  constructor(readonly code: 'bad_message' | 'not_for_ra' | 'bad_alg' | 'decrypt_failed', message: string) {
    super(message);
    this.name = 'RaCmsError';
  }
}

const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsaesOaep: '1.2.840.113549.1.1.7',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  subjectKeyIdentifier: '2.5.29.14',
};

/** Content-encryption algorithms an EnvelopedData may use, by OID (the SDK's table): node cipher name, key and IV sizes. */
const CONTENT_CIPHERS: Record<string, { cipher: CmsContentCipher; keyLength: number; ivLength: number }> = Object.fromEntries(
  Object.entries(CMS_CONTENT_CIPHERS).map(([cipher, c]) => [c.oid, { cipher: cipher as CmsContentCipher, keyLength: c.keyLength, ivLength: c.ivLength }]),
);

const ab = (b: Buffer | Uint8Array): ArrayBuffer => new Uint8Array(b).slice().buffer;

/** Exactly one BER value, or a bad_message error. */
export function parseBer(der: Buffer, what: string): asn1js.AsnType {
  const parsed = asn1js.fromBER(ab(der));
  if (parsed.offset === -1 || parsed.offset !== der.length) throw new RaCmsError('bad_message', `${what} is not one well-formed DER value`);
  return parsed.result;
}

function pkiObject<T>(make: () => T, what: string): T {
  try {
    return make();
  } catch {
    throw new RaCmsError('bad_message', `${what} does not have the expected structure`);
  }
}

const certificateOf = (pem: string) => pkiObject(() => pkijs.Certificate.fromBER(ab(new X509Certificate(pem).raw)), 'the RA certificate');

function subjectKeyId(cert: pkijs.Certificate): Buffer | null {
  const ext = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier);
  if (!ext) return null;
  const inner = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView.slice().buffer);
  return inner.offset === -1 ? null : Buffer.from((inner.result as asn1js.OctetString).valueBlock.valueHexView);
}

/** Whether a KeyTransRecipientInfo names this certificate (issuer and serial, or subject key identifier). */
function addressedTo(ktri: pkijs.KeyTransRecipientInfo, cert: pkijs.Certificate): boolean {
  const rid = ktri.rid;
  if (rid instanceof pkijs.IssuerAndSerialNumber) return rid.issuer.isEqual(cert.issuer) && rid.serialNumber.isEqual(cert.serialNumber);
  const ski = subjectKeyId(cert);
  return Boolean(ski && rid instanceof asn1js.OctetString && Buffer.from(rid.valueBlock.valueHexView).equals(ski));
}

/** Per-process secret for implicit rejection (below). */
const REJECTION_SECRET = crypto.randomBytes(32);

/**
 * RSAES-PKCS1-v1_5 unwrapping with implicit rejection: a malformed block does not
 * raise an error but yields a key derived from the ciphertext, so the caller fails
 * later (at content decryption) the same way as with any wrong key. That keeps the
 * padding check from becoming an oracle (Bleichenbacher, "Marvin"). Node refuses
 * RSA_PKCS1_PADDING for private decryption for that reason; raw RSA plus this
 * check is the remedy it suggests.
 */
function unwrapPkcs1(key: crypto.KeyObject, encrypted: Buffer, keyLength: number): Buffer {
  const synthetic = crypto.createHmac('sha256', REJECTION_SECRET).update(encrypted).digest().subarray(0, keyLength);
  let em: Buffer;
  try {
    em = crypto.privateDecrypt({ key, padding: crypto.constants.RSA_NO_PADDING }, encrypted);
  } catch {
    return synthetic;
  }
  let separator = 0;
  for (let i = 2; i < em.length; i++) separator = separator === 0 && em[i] === 0 ? i : separator;
  const good = em.length >= 11 + keyLength && em[0] === 0 && em[1] === 2 && separator >= 10 && em.length - separator - 1 === keyLength;
  return good ? em.subarray(em.length - keyLength) : synthetic;
}

function unwrapKey(ktri: pkijs.KeyTransRecipientInfo, key: crypto.KeyObject, keyLength: number): Buffer {
  const encrypted = Buffer.from(ktri.encryptedKey.valueBlock.valueHexView);
  const alg = ktri.keyEncryptionAlgorithm;
  if (alg.algorithmId === OID.rsaEncryption) return unwrapPkcs1(key, encrypted, keyLength);
  if (alg.algorithmId === OID.rsaesOaep && (alg.algorithmParams === undefined || pkiObject(() => new pkijs.RSAESOAEPParams({ schema: alg.algorithmParams }), 'the OAEP parameters').hashAlgorithm.algorithmId === OID.sha1)) {
    try {
      const cek = crypto.privateDecrypt({ key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, encrypted);
      if (cek.length === keyLength) return cek;
    } catch {
      // Same answer as any other wrong key: see unwrapPkcs1.
    }
    return crypto.createHmac('sha256', REJECTION_SECRET).update(encrypted).digest().subarray(0, keyLength);
  }
  throw new RaCmsError('bad_alg', `key transport ${alg.algorithmId} is not supported (rsaEncryption or RSAES-OAEP with SHA-1)`);
}

function decryptContent(cipher: string, key: Buffer, iv: Buffer, data: Buffer): Buffer {
  if (cipher === 'des-cbc') {
    const d = forge.cipher.createDecipher('DES-CBC', forge.util.createBuffer(key.toString('binary')));
    d.start({ iv: forge.util.createBuffer(iv.toString('binary')) });
    d.update(forge.util.createBuffer(data.toString('binary')));
    if (!d.finish()) throw new Error('bad padding');
    return Buffer.from(d.output.getBytes(), 'binary');
  }
  const d = crypto.createDecipheriv(cipher, key, iv);
  return Buffer.concat([d.update(data), d.final()]);
}

/**
 * The content of a CMS EnvelopedData (DER ContentInfo) addressed to one of `ras`
 * (newest first; a key may be given as a function, opened only for the RA that is
 * addressed): the recipient is found by issuer and serial number (or subject key
 * identifier), and its content-encryption algorithm. Every failure after the
 * recipient is found is one error, `decrypt_failed`, whatever went wrong.
 */
export function openEnvelope(der: Buffer, ras: Array<{ certificatePem: string; key: crypto.KeyObject | (() => crypto.KeyObject) }>): { content: Buffer; cipher: CmsContentCipher } {
  const env = envelopeOf(der);
  const eci = env.encryptedContentInfo;
  const alg = CONTENT_CIPHERS[eci.contentEncryptionAlgorithm.algorithmId];
  if (!alg) throw new RaCmsError('bad_alg', `content encryption ${eci.contentEncryptionAlgorithm.algorithmId} is not supported (AES-CBC, 3DES or DES)`);
  const params = eci.contentEncryptionAlgorithm.algorithmParams as asn1js.OctetString | undefined;
  const iv = params instanceof asn1js.OctetString ? Buffer.from(params.valueBlock.valueHexView) : Buffer.alloc(0);
  if (iv.length !== alg.ivLength) throw new RaCmsError('bad_message', 'the content-encryption IV is missing or has the wrong size');
  const data = Buffer.from(pkiObject(() => eci.getEncryptedContent(), 'the encrypted content'));

  for (const ra of ras) {
    const cert = certificateOf(ra.certificatePem);
    const recipient = env.recipientInfos.find((ri) => ri.variant === 1 && addressedTo(ri.value as pkijs.KeyTransRecipientInfo, cert));
    if (!recipient) continue;
    const cek = unwrapKey(recipient.value as pkijs.KeyTransRecipientInfo, typeof ra.key === 'function' ? ra.key() : ra.key, alg.keyLength);
    try {
      return { content: decryptContent(alg.cipher, cek, iv, data), cipher: alg.cipher };
    } catch {
      throw new RaCmsError('decrypt_failed', 'the EnvelopedData could not be decrypted');
    }
  }
  throw new RaCmsError('not_for_ra', 'the EnvelopedData has no recipient that is this issuer\'s RA certificate');
}

/** The EnvelopedData of one CMS ContentInfo, or a bad_message error. */
function envelopeOf(der: Buffer): pkijs.EnvelopedData {
  const info = pkiObject(() => new pkijs.ContentInfo({ schema: parseBer(der, 'the EnvelopedData') }), 'the EnvelopedData');
  if (info.contentType !== OID.envelopedData) throw new RaCmsError('bad_message', 'the content is not a CMS EnvelopedData');
  return pkiObject(() => new pkijs.EnvelopedData({ schema: info.content }), 'the EnvelopedData');
}

/** Whether `der` is one CMS ContentInfo holding an EnvelopedData. */
export function isEnvelopedData(der: Buffer): boolean {
  try {
    envelopeOf(der);
    return true;
  } catch {
    return false;
  }
}

export interface SignedAttributeInput {
  type: string;
  /** DER of each value. */
  values: Buffer[];
}

/**
 * A CMS SignedData (DER ContentInfo) signed by the RA: SHA-256 with RSA, signed
 * attributes contentType (id-data), signingTime and messageDigest plus the caller's
 * own, the RA certificate in `certificates`. `content` null: no encapsulated content
 * (the digest is then that of the empty string, as CMS readers compute it).
 */
export function signAsRa(opts: { content: Buffer | null; attributes: SignedAttributeInput[]; certificatePem: string; key: crypto.KeyObject; now?: Date }): Buffer {
  const cert = certificateOf(opts.certificatePem);
  const digest = crypto.createHash('sha256').update(opts.content ?? Buffer.alloc(0)).digest();
  const attrs = [
    new pkijs.Attribute({ type: OID.contentType, values: [new asn1js.ObjectIdentifier({ value: OID.data })] }),
    new pkijs.Attribute({ type: OID.signingTime, values: [new asn1js.UTCTime({ valueDate: opts.now ?? new Date() })] }),
    new pkijs.Attribute({ type: OID.messageDigest, values: [new asn1js.OctetString({ valueHex: ab(digest) })] }),
    ...opts.attributes.map((a) => new pkijs.Attribute({ type: a.type, values: a.values.map((v) => parseBer(v, `a value of attribute ${a.type}`)) })),
  ];
  // DER orders a SET OF by encoding; verifiers that re-encode the attributes (Go's) sort them so.
  const sorted = attrs.map((a) => ({ a, der: Buffer.from(a.toSchema().toBER(false)) })).sort((x, y) => Buffer.compare(x.der, y.der)).map((x) => x.a);
  const signedAttrs = new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: sorted });
  // The signature covers the attributes encoded as a SET OF (RFC 5652 5.4), not with their [0] tag.
  const toSign = Buffer.from(signedAttrs.toSchema().toBER(false));
  toSign[0] = 0x31;
  const signature = crypto.sign('sha256', toSign, opts.key);
  const signer = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
    digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256 }),
    signedAttrs,
    signatureAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsaEncryption, algorithmParams: new asn1js.Null() }),
    signature: new asn1js.OctetString({ valueHex: ab(signature) }),
  });
  const encap = new pkijs.EncapsulatedContentInfo({ eContentType: OID.data });
  // Set after construction: the constructor would split it into a constructed (BER) string.
  if (opts.content) encap.eContent = new asn1js.OctetString({ valueHex: ab(opts.content) });
  const signed = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256 })],
    encapContentInfo: encap,
    certificates: [cert],
    signerInfos: [signer],
  });
  const info = new pkijs.ContentInfo({ contentType: OID.signedData, content: signed.toSchema() });
  return Buffer.from(info.toSchema().toBER(false));
}
