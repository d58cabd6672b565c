/**
 * The capability rules the host enforces, as pure functions. The kernel's broker
 * and the SDK's test host both use these, so a plugin tested with the kit meets
 * the same rules it will meet when installed.
 */
export * from './address-policy.js';
export * from './host-allowlist.js';
export * from './json-value.js';
export * from './fetch-request.js';
export * from './origin-rule.js';
export * from './agent-local-rules.js';
export * from './broker-rules.js';
export * from './exec-args.js';
export * from './config-marks.js';
