/*
 * Just enough DER for EST: encoding the few structures the server writes
 * (PKCS#7 certs-only, CsrAttrs, a PKCS#10 request for server keygen) and a
 * structural check of what clients send. Parsing meaning out of a CSR is the
 * kernel's job; here we only refuse bytes that are not one well-formed value.
 */

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
};

export const seq = (...items: Buffer[]) => tlv(0x30, ...items);
export const set = (...items: Buffer[]) => tlv(0x31, ...items);
export const int = (n: number) => tlv(0x02, Buffer.from([n]));
export const bitString = (b: Buffer) => tlv(0x03, Buffer.from([0]), b);
export const nullValue = () => Buffer.from([0x05, 0x00]);
/** [n] EXPLICIT / constructed context tag. */
export const ctx = (n: number, ...content: Buffer[]) => tlv(0xa0 | n, ...content);

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * parts[0] + parts[1]];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [];
    let v = part;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] |= 0x80;
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** Reads one TLV header at `at`; null when the bytes do not hold a complete value there. */
export interface Tlv {
  tag: number;
  /** Where the tag byte is. */
  at: number;
  /** Content bounds. */
  start: number;
  end: number;
}

export function readTlv(buf: Buffer, at = 0): Tlv | null {
  if (at + 2 > buf.length) return null;
  const tag = buf[at];
  let len = buf[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4 || start + count > buf.length) return null;
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + buf[start + i];
    start += count;
  }
  const end = start + len;
  return end <= buf.length ? { tag, at, start, end } : null;
}

/** The children of a constructed value, or null when they do not tile it exactly. */
export function children(buf: Buffer, outer: { start: number; end: number }): Tlv[] | null {
  const out: Tlv[] = [];
  let at = outer.start;
  while (at < outer.end) {
    const c = readTlv(buf.subarray(0, outer.end), at);
    if (!c) return null;
    out.push(c);
    at = c.end;
  }
  return out;
}

/** Whether the bytes are exactly one PKCS#10 CertificationRequest in outline: SEQUENCE { SEQUENCE, SEQUENCE, BIT STRING }. */
export function looksLikeCsr(der: Buffer): boolean {
  const top = readTlv(der);
  if (!top || top.tag !== 0x30 || top.end !== der.length) return false;
  const parts = children(der, top);
  return Boolean(parts && parts.length === 3 && parts[0].tag === 0x30 && parts[1].tag === 0x30 && parts[2].tag === 0x03);
}

export const toPem = (der: Buffer, label: string): string =>
  `-----BEGIN ${label}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

export function pemBlocks(text: string, label: string): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+?)-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}
