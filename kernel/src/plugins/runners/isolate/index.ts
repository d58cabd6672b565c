export { createIsolateRunner, IsolateRunner, type IsolateRunnerOptions } from './isolate-runner.js';
export type { SandboxLimits } from './protocol.js';
