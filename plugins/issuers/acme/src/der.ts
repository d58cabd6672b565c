import crypto from 'node:crypto';

/** One DER TLV: its tag, where its value starts and ends, and where the whole element ends. */
interface Tlv {
  tag: number;
  start: number;
  valueStart: number;
  end: number;
}

function readTlv(buf: Buffer, at: number): Tlv {
  if (at + 2 > buf.length) throw new Error('DER: truncated');
  const tag = buf[at];
  let len = buf[at + 1];
  let valueStart = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || valueStart + n > buf.length) throw new Error('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[valueStart + i];
    valueStart += n;
  }
  const end = valueStart + len;
  if (end > buf.length) throw new Error('DER: truncated');
  return { tag, start: at, valueStart, end };
}

/** The children of a constructed element. */
function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.valueStart; at < parent.end; at = out[out.length - 1].end) out.push(readTlv(buf, at));
  return out;
}

function oidText(buf: Buffer, t: Tlv): string {
  const bytes = buf.subarray(t.valueStart, t.end);
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let v = 0;
  for (const b of bytes.subarray(1)) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) { parts.push(v); v = 0; }
  }
  return parts.join('.');
}

const pemBody = (pem: string, label: string): Buffer => {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`not a PEM ${label}`);
  return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
};

const AKI_OID = '2.5.29.35';

/**
 * The ARI certificate identifier (RFC 9773 section 4.1): base64url of the
 * Authority Key Identifier's keyIdentifier, a dot, and base64url of the DER
 * serial number's value bytes (with its leading zero, if any).
 */
export function ariCertId(certificatePem: string): string {
  const der = pemBody(certificatePem, 'CERTIFICATE');
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0];
  const fields = children(der, tbs);
  const hasVersion = fields[0].tag === 0xa0;
  const serial = fields[hasVersion ? 1 : 0];
  const extsWrapper = fields.find((f) => f.tag === 0xa3);
  if (!extsWrapper) throw new Error('the certificate has no extensions, so no Authority Key Identifier');
  const exts = children(der, children(der, extsWrapper)[0]);
  for (const ext of exts) {
    const parts = children(der, ext);
    if (oidText(der, parts[0]) !== AKI_OID) continue;
    const value = parts[parts.length - 1];
    const akiSeq = readTlv(der, value.valueStart);
    const keyId = children(der, akiSeq).find((c) => c.tag === 0x80);
    if (!keyId) break;
    return `${der.subarray(keyId.valueStart, keyId.end).toString('base64url')}.${der.subarray(serial.valueStart, serial.end).toString('base64url')}`;
  }
  throw new Error('the certificate has no Authority Key Identifier key id');
}

const SIG_HASH: Record<string, string | null> = {
  '1.2.840.113549.1.1.11': 'sha256', '1.2.840.113549.1.1.12': 'sha384', '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256', '1.2.840.10045.4.3.3': 'sha384', '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null, '1.3.101.113': null,
};

/**
 * Checks a PKCS#10 request's self-signature before anything is ordered, so a
 * damaged or tampered CSR is refused without spending a CA order. Returns null
 * when it verifies, else why not. Signature algorithms this check does not know
 * (RSA-PSS) are left to the CA, which verifies the CSR at finalize anyway.
 */
export function csrSignatureProblem(csrPem: string): string | null {
  try {
    const der = pemBody(csrPem, 'CERTIFICATE REQUEST');
    const outer = readTlv(der, 0);
    if (outer.end !== der.length) return 'the CSR has trailing bytes';
    const [info, alg, sig] = children(der, outer);
    const spki = children(der, info)[2];
    const oid = oidText(der, children(der, alg)[0]);
    if (!(oid in SIG_HASH)) return null;
    const key = crypto.createPublicKey({ key: der.subarray(spki.start, spki.end), format: 'der', type: 'spki' });
    const signature = der.subarray(sig.valueStart + 1, sig.end);
    return crypto.verify(SIG_HASH[oid], der.subarray(info.start, info.end), key, signature) ? null : 'the CSR signature does not verify';
  } catch (err) {
    return `the CSR cannot be parsed: ${(err as Error).message}`;
  }
}
