export { startKernel, type Kernel, type StartOptions } from './kernel.js';
export { loadConfig, type KernelConfig } from './config.js';
export { AppError, appError, StartupError, ERRORS } from './errors.js';
export type * from './resources/agents/agent-wire.js';
