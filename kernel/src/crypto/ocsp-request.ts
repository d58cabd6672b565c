import { bytesOf, children, contentOf, DerError, expectTag, oidToString, readTlv } from './der.js';

/**
 * OCSPRequest (RFC 6960 4.1.1) read with the bounds-checked DER reader. Anything
 * that is not a well-formed request (trailing bytes, wrong tags, an oversized
 * nonce, too many CertIDs) throws DerError; the responder answers those with
 * malformedRequest. A request signature is accepted but not checked (the
 * responder requires none).
 */

export const NONCE_OID = '1.3.6.1.5.5.7.48.1.2';
const MAX_REQUESTS = 16;
/** RFC 8954: a nonce is 1 to 32 octets. */
const MAX_NONCE = 32;

export const HASH_OIDS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

export interface OcspCertId {
  /** The CertID exactly as sent; echoed in the response. */
  der: Buffer;
  /** node:crypto name of the hash, or null when the algorithm is not supported. */
  hash: string | null;
  nameHash: string;
  keyHash: string;
  /** Lowercase hex magnitude, no leading zero bytes (even length). */
  serialHex: string;
}

export interface OcspRequestInfo {
  certIds: OcspCertId[];
  /** The nonce Extension as sent (DER), when there is one. */
  nonceExtension: Buffer | null;
}

export function parseOcspRequest(buf: Buffer): OcspRequestInfo {
  const outer = expectTag(readTlv(buf, 0), 0x30, 'OCSPRequest');
  if (outer.end !== buf.length) throw new DerError('trailing bytes after the OCSPRequest');
  const parts = children(buf, outer);
  if (!parts.length || parts.length > 2 || (parts[1] && parts[1].tag !== 0xa0)) throw new DerError('OCSPRequest must hold tbsRequest and an optional signature');
  const tbs = children(buf, expectTag(parts[0], 0x30, 'TBSRequest'));
  let i = 0;
  if (tbs[i]?.tag === 0xa0) i++; // version
  if (tbs[i]?.tag === 0xa1) i++; // requestorName
  const list = tbs[i++];
  if (!list) throw new DerError('no requestList');
  const requests = children(buf, expectTag(list, 0x30, 'requestList'));
  if (!requests.length || requests.length > MAX_REQUESTS) throw new DerError(`requestList must hold 1 to ${MAX_REQUESTS} requests`);
  let nonceExtension: Buffer | null = null;
  if (tbs[i]?.tag === 0xa2) {
    const [exts] = children(buf, tbs[i++]);
    for (const ext of children(buf, expectTag(exts, 0x30, 'requestExtensions'))) {
      const fields = children(buf, expectTag(ext, 0x30, 'Extension'));
      const id = oidToString(contentOf(buf, expectTag(fields[0], 0x06, 'extnID')));
      if (id !== NONCE_OID) continue;
      const value = expectTag(fields[fields.length - 1], 0x04, 'extnValue');
      // The value is an OCTET STRING holding the nonce (some clients send it bare).
      const inner = contentOf(buf, value);
      let nonceLength = inner.length;
      if (inner[0] === 0x04) {
        try {
          const t = readTlv(inner, 0);
          if (t.end === inner.length) nonceLength = t.end - t.contentStart;
        } catch { /* a bare nonce that happens to start with 0x04 */ }
      }
      if (nonceLength < 1 || nonceLength > MAX_NONCE) throw new DerError(`the nonce must be 1 to ${MAX_NONCE} octets`);
      nonceExtension = Buffer.from(bytesOf(buf, ext));
    }
  }
  if (i !== tbs.length) throw new DerError('unexpected fields in TBSRequest');
  const certIds = requests.map((req) => {
    const [certIdT, extsT, extra] = children(buf, expectTag(req, 0x30, 'Request'));
    if (extra || (extsT && extsT.tag !== 0xa0)) throw new DerError('unexpected fields in Request');
    const fields = children(buf, expectTag(certIdT, 0x30, 'CertID'));
    if (fields.length !== 4) throw new DerError('CertID must have 4 fields');
    const alg = children(buf, expectTag(fields[0], 0x30, 'hashAlgorithm'));
    const hashOid = oidToString(contentOf(buf, expectTag(alg[0], 0x06, 'hash OID')));
    const serial = contentOf(buf, expectTag(fields[3], 0x02, 'serialNumber'));
    if (!serial.length || serial.length > 21 || serial[0] & 0x80) throw new DerError('serialNumber must be a positive integer of at most 20 bytes');
    let hex = serial.toString('hex').replace(/^(00)+/, '');
    if (!hex) hex = '00';
    return {
      der: Buffer.from(bytesOf(buf, certIdT)),
      hash: HASH_OIDS[hashOid] ?? null,
      nameHash: contentOf(buf, expectTag(fields[1], 0x04, 'issuerNameHash')).toString('hex'),
      keyHash: contentOf(buf, expectTag(fields[2], 0x04, 'issuerKeyHash')).toString('hex'),
      serialHex: hex,
    };
  });
  return { certIds, nonceExtension };
}
