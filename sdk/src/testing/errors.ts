/**
 * Errors of the test host. They mirror the kernel's: a refused host operation is
 * a capability error inside the plugin, and a failed call carries the same
 * failure codes the kernel's PluginCallError uses, so a test can assert on the
 * outcome a real host would report.
 */

export type CallFailureCode =
  | 'timeout'
  | 'plugin_error'
  | 'bad_result'
  | 'capability_denied'
  | 'not_supported'
  | 'unavailable';

/** Thrown inside the plugin by a context member the grants do not allow (or given arguments the host refuses). */
export class CapabilityError extends Error {
  readonly code = 'capability_denied' as const;
  constructor(message: string) {
    super(message);
    this.name = 'CapabilityError';
  }
}

/** How `host.call()` fails: the code the kernel would report, and its message. */
export class PluginCallFailure extends Error {
  constructor(readonly code: CallFailureCode, message: string) {
    super(message);
    this.name = 'PluginCallFailure';
  }
}
