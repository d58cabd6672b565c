/**
 * RFC 5280 5.3.1 CRLReason codes, by the names the API accepts. The seeds spell the
 * CA/AA codes caCompromise and aaCompromise; the RFC's own spellings are accepted
 * as aliases. removeFromCRL (8) is not a reason to revoke (it only takes a hold off
 * a delta CRL), and 7 is unassigned, so neither can be asked for.
 */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  caCompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aaCompromise: 10,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

const ALIASES: Record<string, RevocationReason> = { cACompromise: 'caCompromise', aACompromise: 'aaCompromise' };

/** Every name a request may use (canonical names first). */
export const REASON_NAMES = [...Object.keys(REVOCATION_REASONS), ...Object.keys(ALIASES)];

export function canonicalReason(name: string | undefined): RevocationReason {
  const n = name ?? 'unspecified';
  if (Object.hasOwn(ALIASES, n)) return ALIASES[n];
  if (Object.hasOwn(REVOCATION_REASONS, n)) return n as RevocationReason;
  throw new Error(`unknown revocation reason ${n}`);
}

export const reasonCode = (name: RevocationReason): number => REVOCATION_REASONS[name];

/** Reasons that mean a key may be in someone else's hands: notifications say so loudly. */
export const isCompromise = (name: RevocationReason) => name === 'keyCompromise' || name === 'caCompromise' || name === 'aaCompromise';
