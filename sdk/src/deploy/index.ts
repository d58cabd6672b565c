/**
 * @certctl/sdk/deploy: the shared deploy pipeline for target plugins (snapshot,
 * SHA-256 idempotency, atomic writes, validate, reload, rollback), the input
 * checks for operator-configured paths and commands, the shared `verify` config
 * block, and PEM assembly. Runtime-neutral: Node built-ins only where a check can
 * be skipped without them (keyPairProblem).
 */
export { deployFiles, restoreSnapshot, isMissingFile, defaultFileMode, type DeployCommand, type DeployFile, type DeployPlan, type RestoreOptions } from './pipeline.js';
export { argvProblem, checkArgv, checkPath, pathProblem, DeployConfigError, DEPLOY_LIMITS } from './argv.js';
export { ABSOLUTE_FILE_PATH_PATTERN, commandFieldSchema, pathFieldSchema, readVerifyEndpoint, verifyEndpointProblem, verifyEndpointSchema, type VerifyEndpoint } from './schema.js';
export { chainBundle, keyCertChainBundle, leafChainBundle, pemBlocks, privateKeyBlock, type PemBlock } from './pem.js';
export { defineFileTarget, readFileTargetConfig, type CommandField, type FileTargetConfig, type FileTargetSpec } from './file-target.js';
export { keyPairProblem } from './key-pair.js';
export { sha256Hex } from './sha256.js';
export { SNAPSHOT_TTL_SECONDS, SNAPSHOTS_KEPT, isSnapshotId, newSnapshotId, pruneSnapshotIds } from './snapshots.js';
