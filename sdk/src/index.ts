export {
  PLUGIN_API_VERSION,
  PLUGIN_KINDS,
  PLUGIN_RUNTIMES,
  isSecretField,
  type JsonSchemaObject,
  type PluginCapabilities,
  type PluginCapability,
  type PluginKind,
  type PluginManifest,
  type PluginPackageJson,
  type PluginRuntime,
} from './manifest.js';
export { MANIFEST_SCHEMA } from './manifest-schema.js';
export * from './contract.js';
