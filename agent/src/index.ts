export { AgentDaemon } from './agent-daemon.js';
export { loadAgentConfig, AgentConfigError, type AgentConfig } from './config.js';
export { deriveCallGrants, type CallGrants, type LocalGrantPolicy } from './grants.js';
export { buildCsr, splitSans } from './csr.js';
export { KeyStore, keyIdForCertificate } from './key-store.js';
export { scanForCertificates } from './discovery-scan.js';
export { main } from './cli.js';
export { AgentPluginHost, TargetUnavailable, type TargetInstance, type TargetSession } from './agent-plugin-host.js';
export { LocalKv } from './local-kv.js';
