import { KV_MAX_KEYS_CEILING, PLUGIN_API_VERSION, PLUGIN_KINDS, PLUGIN_RUNTIMES, PROTOCOL_MOUNT_ROOTS } from './manifest.js';

const kebabCase = '^[a-z][a-z0-9]*(-[a-z0-9]+)*$';
// Relative, inside the package: no leading slash, no `..` segment, no backslash.
const packagePath = '^(?!/)(?!.*(^|/)\\.\\.(/|$))[A-Za-z0-9._@+/-]+$';
// An optional `http://` (plain HTTP allowed to that host) or `https://` prefix; without one, HTTPS only.
const hostPattern = '^(https?://)?(\\*\\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$';
const absolutePath = '^/(?!.*(^|/)\\.\\.(/|$)).*$';
const commandName = '^[A-Za-z0-9_./+-]+$';
// A mount is a root or below one: lower-case segments, no `..`, no trailing slash.
const escapeRe = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const mountPattern = `^(${PROTOCOL_MOUNT_ROOTS.map(escapeRe).join('|')})(/[a-z0-9][a-z0-9._-]{0,62})*$`;

const stringList = (pattern: string, description: string) => ({
  type: 'array',
  description,
  uniqueItems: true,
  maxItems: 100,
  items: { type: 'string', minLength: 1, maxLength: 255, pattern },
});

/**
 * JSON schema of the manifest (the `certctl` block of package.json). It has no
 * `$id` so that several validators can compile it side by side. Runtime-specific
 * rule: every runtime listed in `runtimes` needs its entry in `entry`.
 */
export const MANIFEST_SCHEMA = {
  title: 'certctl plugin manifest',
  type: 'object',
  additionalProperties: false,
  required: ['id', 'kind', 'apiVersion', 'engines', 'runtimes', 'entry', 'configSchema'],
  properties: {
    id: { type: 'string', minLength: 2, maxLength: 64, pattern: kebabCase, description: 'Stable plugin id, kebab-case' },
    kind: { type: 'string', enum: [...PLUGIN_KINDS] },
    apiVersion: { type: 'string', const: PLUGIN_API_VERSION },
    displayName: { type: 'string', minLength: 1, maxLength: 100 },
    engines: {
      type: 'object',
      additionalProperties: false,
      required: ['certctl'],
      properties: { certctl: { type: 'string', minLength: 1, maxLength: 200, description: 'semver range of supported host versions' } },
    },
    runtimes: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: [...PLUGIN_RUNTIMES] } },
    entry: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: Object.fromEntries(PLUGIN_RUNTIMES.map((r) => [r, { type: 'string', minLength: 1, maxLength: 255, pattern: packagePath }])),
    },
    capabilities: {
      type: 'object',
      additionalProperties: false,
      properties: {
        http: { type: 'object', additionalProperties: false, required: ['hosts'], properties: { hosts: stringList(hostPattern, 'Hosts the plugin may call') } },
        kv: {
          oneOf: [
            { type: 'boolean' },
            { type: 'object', additionalProperties: false, required: ['maxKeys'], properties: { maxKeys: { type: 'integer', minimum: 1, maximum: KV_MAX_KEYS_CEILING } } },
          ],
        },
        events: { type: 'boolean' },
        ca: { type: 'boolean' },
        issuance: { type: 'boolean' },
        fs: { type: 'object', additionalProperties: false, required: ['paths'], properties: { paths: stringList(absolutePath, 'Absolute paths the plugin may read and write') } },
        exec: {
          type: 'object', additionalProperties: false, required: ['commands'],
          properties: {
            commands: stringList(commandName, 'Commands the plugin may run'),
            args: {
              type: 'object', description: 'Per declared command: the argument lists it may run with',
              propertyNames: { pattern: commandName, maxLength: 255 },
              additionalProperties: {
                type: 'array', maxItems: 64,
                items: {
                  type: 'array', maxItems: 64,
                  items: { oneOf: [
                    { type: 'string', maxLength: 4096 },
                    { type: 'object', additionalProperties: false, required: ['regex'], properties: { regex: { type: 'string', minLength: 1, maxLength: 512 } } },
                    { type: 'object', additionalProperties: false, required: ['path'], properties: { path: { enum: ['read', 'write'] } } },
                  ] },
                },
              },
            },
          },
        },
      },
    },
    configSchema: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string', const: 'object' } },
      description: 'JSON schema of an instance config; must describe an object',
    },
    uiSchema: { type: 'object' },
    features: { type: 'array', uniqueItems: true, maxItems: 50, items: { type: 'string', minLength: 1, maxLength: 64, pattern: kebabCase } },
    workerConcurrency: { type: 'integer', minimum: 1, maximum: 32 },
    protocol: {
      type: 'object',
      additionalProperties: false,
      required: ['mounts'],
      properties: {
        mounts: { type: 'array', minItems: 1, maxItems: 10, uniqueItems: true, items: { type: 'string', maxLength: 255, pattern: mountPattern } },
        clientCertificates: { type: 'boolean' },
        maxBodyBytes: { type: 'integer', minimum: 1024, maximum: 1_048_576 },
        timeoutMs: { type: 'integer', minimum: 100, maximum: 120_000 },
      },
    },
  },
  allOf: [
    ...PLUGIN_RUNTIMES.map((runtime) => ({
      if: { required: ['runtimes'], properties: { runtimes: { type: 'array', contains: { const: runtime } } } },
      then: { required: ['entry'], properties: { entry: { type: 'object', required: [runtime], properties: { [runtime]: { type: 'string' } } } } },
    })),
    // Protocol plugins say where they are served; only they may, and only they may enrol.
    {
      if: { required: ['kind'], properties: { kind: { const: 'protocol' } } },
      then: { required: ['protocol'], properties: { protocol: { type: 'object' } } },
      else: { not: { anyOf: [{ required: ['protocol'], properties: { protocol: { type: 'object' } } }, { required: ['capabilities'], properties: { capabilities: { type: 'object', required: ['issuance'], properties: { issuance: { const: true } } } } }] } },
    },
  ],
} as const;
