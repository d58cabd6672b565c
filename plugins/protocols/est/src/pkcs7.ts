import { ctx, int, oid, seq, set } from './der.js';

const SIGNED_DATA = '1.2.840.113549.1.7.2';
const DATA = '1.2.840.113549.1.7.1';

/**
 * A CMS SignedData "certs-only" message (RFC 5652 with no signers; RFC 7030
 * 4.1.3 / 4.2.3): ContentInfo { signedData, [0] SignedData { version 1,
 * digestAlgorithms {}, encapContentInfo { data }, certificates [0] IMPLICIT,
 * signerInfos {} } }. Certificates go in as the DER they are.
 */
export function certsOnly(certificatesDer: Buffer[]): Buffer {
  const signedData = seq(
    int(1),
    set(),
    seq(oid(DATA)),
    ctx(0, ...certificatesDer),
    set(),
  );
  return seq(oid(SIGNED_DATA), ctx(0, signedData));
}

/** EST sends PKCS#7 base64-encoded (Content-Transfer-Encoding: base64), in lines of 64. */
export const base64Lines = (der: Buffer): string => `${der.toString('base64').replace(/(.{64})/g, '$1\r\n').replace(/\r\n$/, '')}\r\n`;
