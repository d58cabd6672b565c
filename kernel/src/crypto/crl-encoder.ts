import crypto from 'node:crypto';
import { CryptoError, type CrlRequest, type CrlResult } from './crypto-types.js';
import { bitStringBytes, explicit, implicitPrim, octetString, oid, seq, tlv, uintegerFromBytes, x509Time } from './der.js';
import { issuerTemplateFor } from './leaf-template.js';

/**
 * X.509 v2 CRLs (RFC 5280 5.1) written straight into one buffer. The general
 * library builds an object per entry and grows superlinearly; a CRL entry is a
 * fixed shape (serial, time, optional reason), so this measures every entry in a
 * first pass, allocates the TBSCertList once and writes the entries in a second.
 * Entries arrive packed (one buffer of length-prefixed serials, a Float64Array of
 * times, a Uint8Array of reasons), so a million of them cross into the worker as
 * three typed arrays instead of a million objects.
 */

const REASON_PREFIX = Buffer.from([0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01]);
const REASON_EXT_LEN = REASON_PREFIX.length + 1;
/** No reason extension: RFC 5280 asks to leave out `unspecified` rather than encode it. */
export const NO_REASON = 0;

function lengthOfLength(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x100) return 2;
  if (n < 0x10000) return 3;
  if (n < 0x1000000) return 4;
  return 5;
}

function writeLength(buf: Buffer, at: number, n: number): number {
  if (n < 0x80) {
    buf[at] = n;
    return at + 1;
  }
  const bytes = lengthOfLength(n) - 1;
  buf[at++] = 0x80 | bytes;
  for (let i = bytes - 1; i >= 0; i--) buf[at++] = Math.floor(n / 2 ** (8 * i)) & 0xff;
  return at;
}

/** UTCTime (13 chars) through 2049, GeneralizedTime (15) after, as RFC 5280 requires. */
const timeLength = (seconds: number) => (seconds < 2524608000 ? 15 : 17);

function writeTime(buf: Buffer, at: number, seconds: number): number {
  const d = new Date(seconds * 1000);
  const y = d.getUTCFullYear();
  const utc = y < 2050;
  buf[at++] = utc ? 0x17 : 0x18;
  buf[at++] = utc ? 13 : 15;
  const two = (v: number) => {
    buf[at++] = 0x30 + Math.floor(v / 10);
    buf[at++] = 0x30 + (v % 10);
  };
  if (!utc) two(Math.floor(y / 100));
  two(y % 100);
  two(d.getUTCMonth() + 1);
  two(d.getUTCDate());
  two(d.getUTCHours());
  two(d.getUTCMinutes());
  two(d.getUTCSeconds());
  buf[at++] = 0x5a;
  return at;
}

/** Content bytes of a positive INTEGER with this magnitude (a sign byte when the top bit is set). */
function integerContentLength(serials: Uint8Array, at: number, len: number): { skip: number; length: number } {
  let skip = 0;
  while (skip < len - 1 && serials[at + skip] === 0) skip++;
  const pad = serials[at + skip] & 0x80 ? 1 : 0;
  return { skip, length: len - skip + pad };
}

function checkRequest(req: CrlRequest): void {
  const n = req.count;
  if (!Number.isSafeInteger(n) || n < 0) throw new CryptoError('bad_request', 'count must be a non-negative integer');
  if (req.revokedAt.length < n || req.reasons.length < n) throw new CryptoError('bad_request', 'revokedAt and reasons must hold count entries');
  if (!/^\d{1,38}$/.test(req.crlNumber)) throw new CryptoError('bad_request', 'crlNumber must be a decimal integer of at most 20 bytes');
  if (!(req.nextUpdate > req.thisUpdate)) throw new CryptoError('bad_request', 'nextUpdate must be after thisUpdate');
}

/** Encodes and signs a CRL. */
export function encodeCrl(req: CrlRequest): CrlResult {
  checkRequest(req);
  const issuer = issuerTemplateFor(req.issuerCertPem, req.issuerKeyPem);
  const serials = Buffer.from(req.serials.buffer, req.serials.byteOffset, req.serials.byteLength);
  const { count, revokedAt, reasons } = req;

  // Pass 1: the size of every entry and of the list.
  let listContent = 0;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const len = serials[at];
    if (!len || at + 1 + len > serials.length) throw new CryptoError('bad_request', `serial ${i} is empty or runs past the packed serials`);
    const { length } = integerContentLength(serials, at + 1, len);
    const entry = 2 + length + timeLength(revokedAt[i]) + (reasons[i] !== NO_REASON ? REASON_EXT_LEN : 0);
    if (len > 21 || entry >= 0x80) throw new CryptoError('bad_request', `serial ${i} is longer than 20 bytes`);
    listContent += 2 + entry;
    at += 1 + len;
  }

  const numberHex = BigInt(req.crlNumber).toString(16);
  const crlExtensions = explicit(0, seq(
    seq(oid('2.5.29.35'), octetString(seq(implicitPrim(0, issuer.keyId)))),
    seq(oid('2.5.29.20'), octetString(uintegerFromBytes(Buffer.from(numberHex.length % 2 ? `0${numberHex}` : numberHex, 'hex')))),
  ));
  const head = Buffer.concat([
    tlv(0x02, Buffer.from([1])),
    issuer.algorithmIdentifier,
    issuer.subjectDer,
    x509Time(new Date(req.thisUpdate)),
    x509Time(new Date(req.nextUpdate)),
  ]);
  const listTotal = count ? 1 + lengthOfLength(listContent) + listContent : 0;
  const tbsContent = head.length + listTotal + crlExtensions.length;
  const tbsTotal = 1 + lengthOfLength(tbsContent) + tbsContent;

  // Pass 2: write the TBSCertList.
  const tbs = Buffer.allocUnsafe(tbsTotal);
  let w = 0;
  tbs[w++] = 0x30;
  w = writeLength(tbs, w, tbsContent);
  w += head.copy(tbs, w);
  if (count) {
    tbs[w++] = 0x30;
    w = writeLength(tbs, w, listContent);
    at = 0;
    for (let i = 0; i < count; i++) {
      const len = serials[at];
      const { skip, length } = integerContentLength(serials, at + 1, len);
      const reason = reasons[i];
      tbs[w++] = 0x30;
      tbs[w++] = 2 + length + timeLength(revokedAt[i]) + (reason !== NO_REASON ? REASON_EXT_LEN : 0);
      tbs[w++] = 0x02;
      tbs[w++] = length;
      if (length > len - skip) tbs[w++] = 0;
      w += serials.copy(tbs, w, at + 1 + skip, at + 1 + len);
      w = writeTime(tbs, w, revokedAt[i]);
      if (reason !== NO_REASON) {
        w += REASON_PREFIX.copy(tbs, w);
        tbs[w++] = reason;
      }
      at += 1 + len;
    }
  }
  w += crlExtensions.copy(tbs, w);
  if (w !== tbsTotal) throw new CryptoError('bad_request', `CRL length mismatch (${w} != ${tbsTotal})`);

  const signature = crypto.sign(issuer.hash, tbs, issuer.signingKey);
  const tail = Buffer.concat([issuer.algorithmIdentifier, bitStringBytes(signature)]);
  const outerContent = tbs.length + tail.length;
  const der = Buffer.allocUnsafe(1 + lengthOfLength(outerContent) + outerContent);
  der[0] = 0x30;
  let o = writeLength(der, 1, outerContent);
  o += tbs.copy(der, o);
  tail.copy(der, o);
  return { der, entries: count };
}

/** Packs entries for encodeCrl: serials as lowercase hex magnitudes, times in ms, RFC 5280 reason codes. */
export function packCrlEntries(entries: { serialHex: string; revokedAtMs: number; reasonCode: number }[]): Pick<CrlRequest, 'serials' | 'revokedAt' | 'reasons' | 'count'> {
  const parts = entries.map((e) => Buffer.from(e.serialHex.length % 2 ? `0${e.serialHex}` : e.serialHex, 'hex'));
  const serials = Buffer.allocUnsafe(parts.reduce((n, p) => n + 1 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    serials[at++] = p.length;
    at += p.copy(serials, at);
  }
  const revokedAt = new Float64Array(entries.length);
  const reasons = new Uint8Array(entries.length);
  entries.forEach((e, i) => {
    revokedAt[i] = Math.floor(e.revokedAtMs / 1000);
    reasons[i] = e.reasonCode;
  });
  return { serials, revokedAt, reasons, count: entries.length };
}
