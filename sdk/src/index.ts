export {
  PLUGIN_API_VERSION,
  PLUGIN_KINDS,
  PLUGIN_RUNTIMES,
  PROTOCOL_MOUNT_ROOTS,
  isSecretField,
  type JsonSchemaObject,
  type PluginCapabilities,
  type PluginCapability,
  type PluginKind,
  type PluginManifest,
  type PluginPackageJson,
  type PluginRuntime,
  type ProtocolManifest,
} from './manifest.js';
export { MANIFEST_SCHEMA } from './manifest-schema.js';
export * from './contract.js';
export { caFailureResult } from './ca-failure.js';
export { labelSettings } from './label-settings.js';
