/**
 * Just enough DER to build and read certificates on the hot path without a
 * general ASN.1 library: TLV encoding of the handful of types X.509 leaves use,
 * and a bounds-checked reader that walks TLVs by offset without copying.
 * Anything this cannot read is an error, and the caller falls back to the library.
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

// ---- writing --------------------------------------------------------------

/**
 * One TLV from its tag and the concatenation of `parts`, written into a single
 * buffer: a certificate is built from dozens of nested TLVs per signature, and
 * concatenating a tag, a length and the content for each (then the parts for
 * its parent) allocated and copied every level twice.
 */
function tlvOf(tag: number, parts: readonly Buffer[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  let lengthOctets = 0;
  if (n >= 0x80) for (let v = n; v > 0; v = Math.floor(v / 256)) lengthOctets++;
  const out = Buffer.allocUnsafe(2 + lengthOctets + n);
  out[0] = tag;
  if (n < 0x80) out[1] = n;
  else {
    out[1] = 0x80 | lengthOctets;
    for (let i = lengthOctets, v = n; i >= 1; i--, v = Math.floor(v / 256)) out[1 + i] = v & 0xff;
  }
  let at = 2 + lengthOctets;
  for (const p of parts) at += p.copy(out, at);
  return out;
}

export const tlv = (tag: number, content: Buffer): Buffer => tlvOf(tag, [content]);
export const seq = (...parts: Buffer[]) => tlvOf(0x30, parts);
export const set = (...parts: Buffer[]) => tlvOf(0x31, parts);
export const octetString = (b: Buffer) => tlv(0x04, b);
export const boolTrue = Buffer.from([0x01, 0x01, 0xff]);
export const nullDer = Buffer.from([0x05, 0x00]);
/** Context-specific constructed [n] (EXPLICIT wrapping). */
export const explicit = (n: number, content: Buffer) => tlv(0xa0 | n, content);
/** Context-specific primitive [n] (IMPLICIT primitive). */
export const implicitPrim = (n: number, content: Buffer) => tlv(0x80 | n, content);

/** A positive INTEGER from big-endian magnitude bytes (leading zeros trimmed, a sign byte added when needed). */
export function uintegerFromBytes(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let body = bytes.subarray(i);
  if (body.length === 0) body = Buffer.from([0]);
  if (body[0] & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  return tlv(0x02, body);
}

export function smallInteger(n: number): Buffer {
  const hex = n.toString(16);
  return uintegerFromBytes(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));
}

/** Encoded OIDs by dotted string: the same few go into every certificate (bounded, as OIDs in requests vary). */
const oids = new Map<string, Buffer>();

/** The DER OBJECT IDENTIFIER. The buffer is shared: every TLV writer copies it, and nothing may change it. */
export function oid(dotted: string): Buffer {
  const known = oids.get(dotted);
  if (known) return known;
  const parts = dotted.split('.').map(Number);
  if (parts.length < 2 || parts.some((p) => !Number.isSafeInteger(p) || p < 0)) throw new DerError(`bad OID ${dotted}`);
  const out: number[] = [parts[0] * 40 + parts[1]];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  const encoded = tlv(0x06, Buffer.from(out));
  if (oids.size >= 512) oids.clear();
  oids.set(dotted, encoded);
  return encoded;
}

/** A BIT STRING holding whole bytes (signatures, keys). */
export const bitStringBytes = (b: Buffer) => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));

const pad2 = (n: number) => String(n).padStart(2, '0');

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, UTC. */
export function x509Time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const rest = `${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(`${pad2(y % 100)}${rest}`, 'latin1'));
  return tlv(0x18, Buffer.from(`${String(y).padStart(4, '0')}${rest}`, 'latin1'));
}

// ---- reading --------------------------------------------------------------

export interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

/** Reads the TLV at `offset`; only definite lengths of up to 4 bytes (DER). */
export function readTlv(buf: Buffer, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError('truncated DER');
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let len = buf[offset + 1];
  let contentStart = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError('indefinite or oversized DER length');
    if (contentStart + n > limit) throw new DerError('truncated DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[contentStart + i];
    contentStart += n;
  }
  const end = contentStart + len;
  if (end > limit) throw new DerError('DER content runs past its container');
  return { tag, start: offset, contentStart, end };
}

/** The TLVs directly inside a constructed TLV. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end;) {
    const t = readTlv(buf, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

export const bytesOf = (buf: Buffer, t: Tlv) => buf.subarray(t.start, t.end);
export const contentOf = (buf: Buffer, t: Tlv) => buf.subarray(t.contentStart, t.end);

export function oidToString(content: Buffer): string {
  if (!content.length) throw new DerError('empty OID');
  const parts: number[] = [];
  let v = 0;
  for (const b of content) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  const first = parts.shift()!;
  const a = first < 80 ? Math.floor(first / 40) : 2;
  return [a, first - a * 40, ...parts].join('.');
}

export function expectTag(t: Tlv, tag: number, what: string): Tlv {
  if (t.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`);
  return t;
}

// ---- PEM ------------------------------------------------------------------

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CERTIFICATE blocks of a PEM text (a chain, a bundle file), in order, each with LF line ends and ending in a newline. */
export function pemCertificates(text: string | null | undefined): string[] {
  return (text?.match(PEM_CERTIFICATE) ?? []).map((b) => `${b.replace(/\r\n/g, '\n')}\n`);
}

/** The DER of the first PEM block whose label matches (e.g. /CERTIFICATE/, /(NEW )?CERTIFICATE REQUEST/). */
export function pemToDer(pem: string, label: RegExp): Buffer {
  const m = new RegExp(`-----BEGIN ${label.source}-----(?<body>[\\s\\S]*?)-----END ${label.source}-----`).exec(pem);
  if (!m?.groups) throw new DerError('not PEM of the expected type');
  return Buffer.from(m.groups.body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
}

export function derToPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}
