/**
 * The kernel code the agent runs on (plugin catalog, worker runner, the checked
 * fs/exec/fetch helpers), imported module by module. The kernel's index also loads
 * the server (Koa, Knex, PGlite, isolated-vm...): about 0.4 s of start-up, and
 * memory, the agent never uses. Wire types still come from '@certctl/kernel'
 * (`import type`, erased at build).
 */
export { parseDuration } from '@certctl/kernel/dist/config.js';
export { VERSION } from '@certctl/kernel/dist/version.js';
export { loadPluginCatalog, type PluginCatalog, type PluginEntry } from '@certctl/kernel/dist/plugins/catalog.js';
export { WorkerRunner } from '@certctl/kernel/dist/plugins/runners/worker/worker-runner.js';
export { PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker } from '@certctl/kernel/dist/plugins/host/contracts.js';
export { FsRefused, readDeclaredFile, removeDeclaredFile, resolveDeclaredPath, writeDeclaredFile } from '@certctl/kernel/dist/plugins/broker/agent-fs.js';
export { checkExec, ExecFailed, ExecRefused, runDeclaredCommand } from '@certctl/kernel/dist/plugins/broker/agent-exec.js';
export { FetchRefused, pinnedFetch } from '@certctl/kernel/dist/plugins/broker/pinned-fetch.js';
export { sanitizeLogFields, sanitizeLogMessage } from '@certctl/kernel/dist/plugins/broker/log-fields.js';
