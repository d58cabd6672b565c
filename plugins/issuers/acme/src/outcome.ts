import type { IssueResult } from '@certctl/sdk';
import type { AcmeProblem } from './transport.js';

const ACME = 'urn:ietf:params:acme:error:';
/** The CA refuses these names or this request as such: asking again will not help. */
const DENIED = new Set(['rejectedIdentifier', 'unsupportedIdentifier', 'caa', 'badCSR', 'badSignatureAlgorithm', 'badRevocationReason']);
/** The account or config needs the operator. */
const OPERATOR = new Set(['externalAccountRequired', 'accountDoesNotExist', 'unauthorized', 'malformed', 'userActionRequired', 'invalidContact', 'unsupportedContact', 'invalidProfile']);

/** A thrown error, with the problem document the CA sent last, as an issue result. */
export function outcomeOf(err: unknown, problem: AcmeProblem | null): Exclude<IssueResult, { status: 'issued' } | { status: 'pending' }> {
  const message = err instanceof Error ? err.message : String(err);
  const type = problem?.type.startsWith(ACME) ? problem.type.slice(ACME.length) : '';
  const reason = problem ? `${problem.detail || message} (${type || problem.type || `HTTP ${problem.status}`})` : message;
  if (type && DENIED.has(type)) return { status: 'denied', reason };
  if (type && OPERATOR.has(type)) return { status: 'failed', reason, retryable: false };
  // Our own refusals and config problems are not cured by retrying either.
  if ((err as { operator?: boolean })?.operator || /^acme: refusing|returned error 4\d\d|not an ACME directory/.test(message)) return { status: 'failed', reason, retryable: false };
  return { status: 'failed', reason, retryable: true };
}

/** RFC 5280 CRLReason names (as certctl passes them) to their codes. */
export const REVOCATION_REASONS: Record<string, number> = {
  unspecified: 0, keyCompromise: 1, cACompromise: 2, affiliationChanged: 3, superseded: 4,
  cessationOfOperation: 5, certificateHold: 6, removeFromCRL: 8, privilegeWithdrawn: 9, aACompromise: 10,
};
