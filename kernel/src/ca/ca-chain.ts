import crypto from 'node:crypto';
import { certificateFacts } from './ca-certificate.js';
import { CaError } from './ca-errors.js';
import { hasConstraints, nameConstraintsOf, type NameConstraints } from './name-constraints.js';

/** What signing under a validated chain must respect: the name constraints of every CA in it. */
export interface ValidatedChain {
  constraints: { subject: string; nc: NameConstraints }[];
  /** The earliest notAfter in the chain (ms): past it the chain is no longer valid. */
  validUntil: number;
  validFrom: number;
}

/**
 * RFC 5280 path validation of a CA chain before it is used to sign (6.1, for the
 * parts a CA that signs needs): `chain` is the signing CA first, up to the anchor.
 * Each certificate must be a CA (BasicConstraints cA=TRUE), may sign certificates
 * (KeyUsage keyCertSign), be within its validity, be signed by the next one (names
 * chain and the signature verifies; a self-signed anchor verifies itself), and no CA
 * may have more CAs below it than its pathLenConstraint allows. Name constraints
 * that use name types we cannot check (directory names, URIs...) are refused rather
 * than ignored, so nothing is signed that a relying party would reject.
 * Throws CaError (`ca_expired` or `ca_invalid`) naming the certificate.
 */
export function validateCaChain(chain: readonly string[], now: number): ValidatedChain {
  if (!chain.length) throw new CaError('ca_invalid', 'the CA has no certificate');
  const certs = chain.map((pem) => new crypto.X509Certificate(pem));
  const out: ValidatedChain = { constraints: [], validUntil: Infinity, validFrom: -Infinity };
  for (let i = 0; i < chain.length; i++) {
    const facts = certificateFacts(chain[i]);
    const who = `CA certificate ${facts.subject}`;
    if (!facts.isCa) throw new CaError('ca_invalid', `${who} is not a CA (BasicConstraints cA is not TRUE)`);
    if (!facts.keyCertSign) throw new CaError('ca_invalid', `${who} may not sign certificates (KeyUsage keyCertSign is missing)`);
    if (facts.notAfter.getTime() <= now) throw new CaError('ca_expired', `${who} expired on ${facts.notAfter.toISOString()}`);
    if (facts.notBefore.getTime() > now + 5 * 60_000) throw new CaError('ca_invalid', `${who} is not valid before ${facts.notBefore.toISOString()}`);
    if (facts.pathLength !== undefined && facts.pathLength < i) throw new CaError('ca_invalid', `${who} allows ${facts.pathLength} CA certificate(s) below it (pathLenConstraint) but the chain has ${i}`);
    const parent = certs[i + 1] ?? (certs[i].checkIssued(certs[i]) ? certs[i] : null);
    if (parent && !(certs[i].checkIssued(parent) && certs[i].verify(parent.publicKey))) {
      throw new CaError('ca_invalid', `${who} is not signed by ${parent.subject.replace(/\n/g, ', ')}, the certificate above it`);
    }
    const nc = nameConstraintsOf(chain[i]);
    if (nc?.unsupported) throw new CaError('ca_invalid', `${who} has name constraints of a type certctl cannot enforce (only DNS, IP and email); refusing to sign under it`);
    if (hasConstraints(nc)) out.constraints.push({ subject: facts.subject, nc });
    out.validUntil = Math.min(out.validUntil, facts.notAfter.getTime());
    out.validFrom = Math.max(out.validFrom, facts.notBefore.getTime());
  }
  return out;
}
