import { oid, seq, set } from './der.js';
import type { CsrAttributes } from './est-config.js';

const EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const ECDSA_SHA384 = '1.2.840.10045.4.3.3';
const SHA256_RSA = '1.2.840.113549.1.1.11';
const CURVES: Record<string, string> = { 'ecdsa-p256': '1.2.840.10045.3.1.7', 'ecdsa-p384': '1.3.132.0.34' };

/**
 * The CsrAttrs answer (RFC 7030 4.5.2): the signature algorithm to use and an
 * Attribute naming the key type (and curve). Null for `none`: the server has no
 * preference, which EST says with 204 No Content.
 */
export function csrAttrs(kind: CsrAttributes): Buffer | null {
  if (kind === 'none') return null;
  if (kind.startsWith('ecdsa-')) {
    return seq(oid(kind === 'ecdsa-p384' ? ECDSA_SHA384 : ECDSA_SHA256), seq(oid(EC_PUBLIC_KEY), set(oid(CURVES[kind]))));
  }
  return seq(oid(SHA256_RSA), seq(oid(RSA_ENCRYPTION), set()));
}
