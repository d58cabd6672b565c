import { PluginCallError } from '../plugins/host/contracts.js';

/**
 * Why an issuance did not produce a certificate. `retryable: false` ends an
 * Issuance/Renewal job at once (the job queue reads the flag): a CSR that breaks
 * the profile, a denied request or a disabled issuer will not get better by waiting.
 */
export class IssuanceError extends Error {
  constructor(message: string, readonly retryable: boolean, readonly kind: IssuanceFailureKind = retryable ? 'transient' : 'refused') {
    super(message);
    this.name = 'IssuanceError';
  }
}

export type IssuanceFailureKind =
  | 'refused' // the request breaks a rule (profile, policy, state)
  | 'denied' // the CA said no
  | 'transient' // try again later
  | 'issuer_fault'; // the issuer answered with something unusable

export const refused = (message: string) => new IssuanceError(message, false, 'refused');

/** Plugin host failures: a hung or crashed runner may work next time; a plugin that cannot do the call will not. */
export function fromPluginError(err: unknown, what: string): IssuanceError {
  if (!(err instanceof PluginCallError)) return new IssuanceError(`${what} failed: ${(err as Error)?.message ?? String(err)}`, true);
  switch (err.code) {
    case 'not_supported':
    case 'bad_result':
    case 'capability_denied':
      return new IssuanceError(`${what} failed (${err.code}): ${err.message}`, false, 'issuer_fault');
    default:
      return new IssuanceError(`${what} failed (${err.code}): ${err.message}`, true);
  }
}
