/*
 * The names a PKCS#10 request asks for (subject CN and subjectAltName dNSName /
 * iPAddress entries), read with a small DER walker, so finalize can check them
 * against the order's identifiers before the kernel sees the request.
 * (Signature and key checks are the kernel's: it verifies every CSR.)
 */

export interface Tlv { tag: number; start: number; end: number }

export function readTlv(buf: Buffer, at: number, limit = buf.length): Tlv | null {
  if (at + 2 > limit) return null;
  const tag = buf[at];
  let len = buf[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4 || start + count > limit) return null;
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + buf[start + i];
    start += count;
  }
  return start + len <= limit ? { tag, start, end: start + len } : null;
}

export function kids(buf: Buffer, outer: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = outer.start; at < outer.end;) {
    const c = readTlv(buf, at, outer.end);
    if (!c) throw new Error('malformed DER');
    out.push(c);
    at = c.end;
  }
  return out;
}

const OID_CN = '550403';
const OID_EXTENSION_REQUEST = '2a864886f70d01090e';
const OID_SAN = '551d11';
const hex = (buf: Buffer, t: Tlv) => buf.subarray(t.start, t.end).toString('hex');

function ip(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** The CSR's CN and SANs (lower-cased), or null when it is not a well-formed PKCS#10 request. */
export function csrNames(der: Buffer): { commonName: string | null; dns: string[]; ips: string[] } | null {
  try {
    const top = readTlv(der, 0);
    if (!top || top.tag !== 0x30 || top.end !== der.length) return null;
    const [info] = kids(der, top);
    const parts = kids(der, info);
    if (parts.length < 3) return null;
    let commonName: string | null = null;
    for (const rdn of kids(der, parts[1])) {
      for (const atv of kids(der, rdn)) {
        const [type, value] = kids(der, atv);
        if (hex(der, type) === OID_CN) commonName = der.subarray(value.start, value.end).toString('utf8').toLowerCase();
      }
    }
    const dns: string[] = [];
    const ips: string[] = [];
    const attributes = parts.find((p) => p.tag === 0xa0);
    for (const attr of attributes ? kids(der, attributes) : []) {
      const [type, values] = kids(der, attr);
      if (hex(der, type) !== OID_EXTENSION_REQUEST) continue;
      for (const exts of kids(der, values)) {
        for (const ext of kids(der, exts)) {
          const fields = kids(der, ext);
          if (hex(der, fields[0]) !== OID_SAN) continue;
          const octets = fields[fields.length - 1];
          const names = readTlv(der, octets.start, octets.end);
          if (!names) return null;
          for (const n of kids(der, names)) {
            if (n.tag === 0x82) dns.push(der.subarray(n.start, n.end).toString('ascii').toLowerCase());
            else if (n.tag === 0x87) ips.push(ip(der.subarray(n.start, n.end)));
          }
        }
      }
    }
    return { commonName, dns, ips };
  } catch {
    return null;
  }
}
