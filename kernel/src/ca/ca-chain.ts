import crypto from 'node:crypto';
import { children, pemToDer, readTlv } from '../crypto/der.js';
import { certificateFacts } from './ca-certificate.js';
import { CaError } from './ca-errors.js';
import { hasConstraints, nameConstraintsOf, type NameConstraints } from './name-constraints.js';

/** What signing under a validated chain must respect: the name constraints of every CA in it. */
export interface ValidatedChain {
  constraints: { subject: string; nc: NameConstraints }[];
  /** The earliest notAfter in the chain (ms): past it the chain is no longer valid. */
  validUntil: number;
  validFrom: number;
  /**
   * How many more non-self-issued CA certificates the chain's pathLenConstraints
   * allow below the signing CA (Infinity when none limits it): a new CA below it
   * may be made when this is at least 1, with at most this minus one below itself.
   */
  pathBudget: number;
}

/** A version 1 certificate (no version field, so no extensions): OpenSSL accepts one only as a self-signed trust anchor. */
function isV1(pem: string): boolean {
  const der = pemToDer(pem, /CERTIFICATE/);
  const [tbs] = children(der, readTlv(der, 0));
  return children(der, tbs)[0]?.tag !== 0xa0;
}

/**
 * RFC 5280 path validation of a CA chain before it is used to sign (6.1, for the
 * parts a CA that signs needs): `chain` is the signing CA first, up to the anchor.
 * Each certificate must be a CA (BasicConstraints cA=TRUE; a version 1 self-signed
 * anchor is accepted as OpenSSL does), may sign certificates (KeyUsage keyCertSign
 * when KeyUsage is present), be within its validity, be signed by the next one (names
 * chain and the signature verifies; a self-signed anchor verifies itself), and no CA
 * may have more non-self-issued CAs below it than its pathLenConstraint allows
 * (self-issued certificates, such as key-rollover links, do not count: 4.2.1.9).
 * Name constraints that use name types we cannot check (directory names, URIs...)
 * are refused rather than ignored, so nothing is signed that a relying party would reject.
 * Throws CaError (`ca_expired` or `ca_invalid`) naming the certificate.
 */
export function validateCaChain(chain: readonly string[], now: number): ValidatedChain {
  if (!chain.length) throw new CaError('ca_invalid', 'the CA has no certificate');
  const certs = chain.map((pem) => new crypto.X509Certificate(pem));
  const out: ValidatedChain = { constraints: [], validUntil: Infinity, validFrom: -Infinity, pathBudget: Infinity };
  /** Non-self-issued CA certificates below certificate i in the path. */
  let below = 0;
  for (let i = 0; i < chain.length; i++) {
    const facts = certificateFacts(chain[i]);
    const who = `CA certificate ${facts.subject}`;
    const selfSigned = i === chain.length - 1 && certs[i].checkIssued(certs[i]);
    if (!facts.isCa && !(selfSigned && isV1(chain[i]))) throw new CaError('ca_invalid', `${who} is not a CA (BasicConstraints cA is not TRUE)`);
    if (facts.hasKeyUsage && !facts.keyCertSign) throw new CaError('ca_invalid', `${who} may not sign certificates (KeyUsage keyCertSign is missing)`);
    if (facts.notAfter.getTime() <= now) throw new CaError('ca_expired', `${who} expired on ${facts.notAfter.toISOString()}`);
    if (facts.notBefore.getTime() > now + 5 * 60_000) throw new CaError('ca_invalid', `${who} is not valid before ${facts.notBefore.toISOString()}`);
    if (facts.pathLength !== undefined) {
      if (facts.pathLength < below) throw new CaError('ca_invalid', `${who} allows ${facts.pathLength} CA certificate(s) below it (pathLenConstraint) but the chain has ${below}`);
      out.pathBudget = Math.min(out.pathBudget, facts.pathLength - below);
    }
    if (certs[i].subject !== certs[i].issuer) below++;
    const parent = certs[i + 1] ?? (selfSigned ? certs[i] : null);
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
