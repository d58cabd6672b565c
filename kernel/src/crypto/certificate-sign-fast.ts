import crypto from 'node:crypto';
import type { SignCertificateRequest, SignedCertificate } from './crypto-types.js';
import { readVerifiedCsrFast, verifyCsrFast } from './csr-fast.js';
import { derToPem, oid, seq, set, tlv } from './der.js';
import { buildLeafCertificate, issuerTemplateFor } from './leaf-template.js';
import { normalizeSerial, parseDate } from './sign-params.js';

/**
 * The template path of signCertificate, for leaf certificates in the common shapes.
 * It answers null whenever it is not sure (a CA certificate, a subject override,
 * an unusual CSR, any bad parameter): the library path then decides, so refusals
 * read the same whichever path a request would have taken.
 */

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/**
 * The one subject override issuers commonly send, `CN=<name>` with nothing to
 * escape, encoded as the library would (PrintableString when it fits, else
 * UTF8String); null for anything richer, which the library path then parses.
 */
export function simpleCommonNameSubject(subject: string): Buffer | null {
  const m = /^CN=([^\\",+<>;#= ][^\\",+<>;=]*)$/.exec(subject);
  if (!m || m[1].endsWith(' ')) return null;
  const value = m[1];
  const atv = seq(oid('2.5.4.3'), PRINTABLE.test(value) ? tlv(0x13, Buffer.from(value, 'latin1')) : tlv(0x0c, Buffer.from(value, 'utf8')));
  return seq(set(atv));
}

/** Whole seconds: certificate times carry no fractions (RFC 5280 4.1.2.5). */
const wholeSeconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);

/** `csrVerified`: the kernel checked these exact CSR bytes already (CryptoService); the signature check is not repeated. */
export async function signLeafFast(req: SignCertificateRequest, csrVerified = false): Promise<SignedCertificate | null> {
  if (req.extensions?.basicConstraints?.ca || req.extensions?.basicConstraints?.pathLength !== undefined) return null;
  try {
    const subjectOverride = req.subject === undefined ? undefined : simpleCommonNameSubject(req.subject);
    if (subjectOverride === null) return null;
    const csr = csrVerified ? readVerifiedCsrFast(req.csrPem) : await verifyCsrFast(req.csrPem);
    if (!csr) return null;
    const notBefore = wholeSeconds(parseDate(req.notBefore, 'notBefore'));
    const notAfter = wholeSeconds(parseDate(req.notAfter, 'notAfter'));
    if (notAfter <= notBefore) return null;
    const serialHex = normalizeSerial(req.serialNumberHex);
    // An issuer the template cannot read throws: the library path then words the refusal.
    const issuer = issuerTemplateFor(req.issuerCertPem, req.issuerKeyPem);
    if (!req.allowBeyondIssuer && notAfter > issuer.notAfter) return null;
    const der = buildLeafCertificate({
      issuer,
      serial: Buffer.from(serialHex, 'hex'),
      notBefore,
      notAfter,
      subjectDer: subjectOverride ?? csr.parsed.subjectDer,
      spkiDer: csr.parsed.spkiDer,
      subjectKeyBits: csr.parsed.publicKeyBits,
      subjectIsRsa: csr.info.publicKeyAlgorithm === 'RSA',
      sans: req.sans ?? csr.info.sans,
      extensions: req.extensions ?? {},
    });
    return {
      certificatePem: derToPem(der, 'CERTIFICATE'),
      // As the library reports it: the magnitude, without DER's sign byte.
      serialNumberHex: serialHex.replace(/^00(?=[89a-f])/, ''),
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      fingerprintSha256: crypto.createHash('sha256').update(der).digest('hex'),
    };
  } catch {
    return null;
  }
}
