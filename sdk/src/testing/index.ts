/**
 * @certctl/sdk/testing: run a plugin in-process against fake capabilities with
 * the host's grant checks (createTestHost), and hold it to the shared contract
 * suite for its kind (runConformance). Node only; not part of a plugin bundle.
 */
export { CapabilityError, PluginCallFailure, type CallFailureCode } from './errors.js';
export {
  createTestHost,
  type FakeExecHandler,
  type FakeHttpHandler,
  type FakeHttpRequest,
  type FakeHttpResponse,
  type LogRecord,
  type TestHost,
  type TestHostOptions,
} from './test-host.js';
export {
  ConformanceError,
  OPTIONAL_METHODS,
  protocolRequest,
  runConformance,
  type ConformanceCheck,
  type ConformanceKind,
  type ConformanceOptions,
  type ConformanceReport,
} from './conformance.js';
export type { TargetConformanceOptions } from './target-conformance.js';
export { TARGET_CHAIN_CERT_PEM, TARGET_FIRST_CERT_PEM, TARGET_FIRST_KEY_PEM, TARGET_SECOND_CERT_PEM, TARGET_SECOND_KEY_PEM } from './target-fixtures.js';
export {
  BAD_CSR_PEM,
  certificateMatchesCsr,
  csrPublicKeyDer,
  TAMPERED_CSR_PEM,
  TEST_CERT_PEM,
  TEST_CSR_PEM,
  TEST_CSR_SUBJECT,
} from './fixtures.js';
export { jsonProblem } from './json-check.js';
export { methodProblem, resultProblem } from './result-shapes.js';
export { checkFetch } from './grant-checks.js';
export { classifyAddress, matchHostRule, parseHostRule, type HostRule } from '../policy/index.js';
