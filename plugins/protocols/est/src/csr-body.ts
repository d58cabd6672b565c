import { looksLikeCsr, pemBlocks } from './der.js';

const BASE64_TEXT = /^[A-Za-z0-9+/=\s]+$/;

/**
 * The PKCS#10 request in an EST body: base64 DER (what RFC 7030 specifies), a PEM
 * block, or raw DER (clients that send Content-Transfer-Encoding: binary). Null
 * when the body is none of those or the DER is not one well-formed request.
 */
export function decodeCsrBody(body: Buffer): Buffer | null {
  if (!body.length) return null;
  let der: Buffer;
  const text = body.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const blocks = [...pemBlocks(text, 'CERTIFICATE REQUEST'), ...pemBlocks(text, 'NEW CERTIFICATE REQUEST')];
    if (blocks.length !== 1) return null;
    der = blocks[0];
  } else if (body[0] === 0x30 && !BASE64_TEXT.test(text)) {
    der = body;
  } else if (BASE64_TEXT.test(text)) {
    der = Buffer.from(text.replace(/\s+/g, ''), 'base64');
  } else {
    return null;
  }
  return looksLikeCsr(der) ? der : null;
}
