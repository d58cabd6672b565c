export { startKernel, type Kernel, type StartOptions } from './kernel.js';
export { loadConfig, type KernelConfig } from './config.js';
export { AppError, appError, StartupError, ERRORS } from './errors.js';
export type * from './resources/agents/agent-wire.js';
// For `certctl agent` (agent/): its plugin host reuses the catalog, the worker runner and the agent-side capability checks.
export { parseDuration } from './config.js';
export { VERSION } from './version.js';
export { loadPluginCatalog, type PluginCatalog, type PluginEntry } from './plugins/catalog.js';
export { WorkerRunner, type WorkerRunnerOptions } from './plugins/runners/worker/worker-runner.js';
export { PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker, type PluginFailureCode } from './plugins/host/contracts.js';
export { FsRefused, readDeclaredFile, removeDeclaredFile, resolveDeclaredPath, writeDeclaredFile } from './plugins/broker/agent-fs.js';
export { ExecFailed, ExecRefused, runDeclaredCommand } from './plugins/broker/agent-exec.js';
export { FetchFailed, FetchRefused, pinnedFetch } from './plugins/broker/pinned-fetch.js';
export { sanitizeLogFields, sanitizeLogMessage } from './plugins/broker/log-fields.js';
