import type { IssueResult } from './contract.js';

/** Refusal codes meaning "this request will never be signed as it is". */
const DENIED = new Set(['csr_invalid', 'bad_request']);
/** Codes meaning "the CA needs the operator": retrying the same call will not help. */
const OPERATOR = new Set(['ca_not_configured', 'ca_invalid', 'ca_expired', 'ca_missing']);

/**
 * A failed `ctx.ca` call (or sign order) as an issue result: a refused request
 * is `denied`, a CA problem the operator must fix is a non-retryable `failed`,
 * anything else (pool busy, timeout) a retryable one. A capability refusal is
 * rethrown, so the host reports it as such rather than as an ordinary failure.
 * The kernel maps a refused sign order with this same function.
 */
export function caFailureResult(err: unknown): Exclude<IssueResult, { status: 'issued' } | { status: 'pending' }> {
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : '';
  const reason = err instanceof Error ? err.message : String(err);
  if (code === 'capability_denied') throw err;
  if (DENIED.has(code)) return { status: 'denied', reason };
  return { status: 'failed', reason, retryable: !OPERATOR.has(code) };
}
