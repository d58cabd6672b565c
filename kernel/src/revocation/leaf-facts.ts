import { children, contentOf, oidToString, pemToDer, readTlv } from '../crypto/der.js';

/** Serials as stored and compared here: lowercase hex magnitude, no leading zero bytes, even length. */
export function canonicalSerial(hex: string): string {
  const h = hex.replace(/[:\s]/g, '').toLowerCase().replace(/^0+/, '');
  if (!/^[0-9a-f]*$/.test(h)) throw new Error('serial is not hex');
  const body = h || '0';
  return body.length % 2 ? `0${body}` : body;
}

/**
 * The AuthorityKeyIdentifier keyIdentifier (hex) of the first certificate in a PEM
 * chain, or null when it has none or cannot be read. It names the CA that signed
 * the leaf among an issuer's CAs (active and retiring ones share the issuer id).
 */
export function authorityKeyIdOf(pemChain: string): string | null {
  try {
    const der = pemToDer(pemChain, /CERTIFICATE/);
    const [tbs] = children(der, readTlv(der, 0));
    const exts = children(der, tbs).find((f) => f.tag === 0xa3);
    if (!exts) return null;
    const [list] = children(der, exts);
    for (const ext of children(der, list)) {
      const parts = children(der, ext);
      if (oidToString(contentOf(der, parts[0])) !== '2.5.29.35') continue;
      const value = parts[parts.length - 1];
      const aki = readTlv(der, value.contentStart, value.end);
      const keyId = children(der, aki).find((c) => c.tag === 0x80);
      return keyId ? contentOf(der, keyId).toString('hex') : null;
    }
    return null;
  } catch {
    return null;
  }
}
