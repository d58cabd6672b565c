import { MANIFEST_SCHEMA, type PluginCapabilities } from '@certctl/sdk';
import { appError } from '../errors.js';
import type { Ctx, JsonSchema, RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { ARCHIVE_LIMITS } from './install/archive.js';
import { PluginInstaller } from './install/plugin-installer.js';

const UPLOAD_TYPES = new Set(['application/gzip', 'application/x-gzip', 'application/octet-stream', 'application/x-tar+gzip']);

/** The upload is the .tgz itself; anything announced as another type is refused before it is read further. */
function packageBody(ctx: Ctx): Buffer | undefined {
  const type = ctx.get('content-type').split(';')[0].trim().toLowerCase();
  if (!UPLOAD_TYPES.has(type)) throw appError('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/gzip (or application/octet-stream): send the .tgz made by npm pack as the body');
  return ctx.state.rawBody;
}

const CAPABILITIES = structuredClone(MANIFEST_SCHEMA.properties.capabilities) as unknown as JsonSchema;

const INSTALLED: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: { type: 'string' },
    name: { type: 'string' },
    package_name: { type: 'string' },
    version: { type: 'string' },
    status: { type: 'string', enum: ['pending_grant', 'enabled', 'disabled', 'invalid'], description: 'pending_grant: installed, waiting for the operator to grant capabilities; invalid: enabled but its package fails a check on this kernel' },
    status_reason: { type: ['string', 'null'] },
    runtime: { type: 'string', const: 'isolate' },
    requested_capabilities: CAPABILITIES,
    granted_capabilities: CAPABILITIES,
    installed_by: { type: 'string' },
    installed_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
  },
};

/**
 * Managing third-party plugins: install a package (.tgz), grant what it asks
 * for, enable, disable, upgrade, remove. Uploads may be larger than ordinary API
 * bodies (ARCHIVE_LIMITS.maxArchiveBytes) and are read only after the
 * plugin.manage check.
 */
export function pluginManageRoutes(k: KernelServices): RouteDef[] {
  const installer = new PluginInstaller(k);
  const mark = (ctx: Ctx, id: string) => { ctx.state.auditResource = { type: 'plugin', id }; };
  const upload = { rawBody: true, rawBodyTypes: ['application/gzip', 'application/octet-stream'], maxBodyBytes: Math.max(ARCHIVE_LIMITS.maxArchiveBytes, k.config.maxBodySize) };
  return [
    {
      method: 'POST', path: '/api/v1/plugins', access: 'plugin.manage', tag: 'plugins', ...upload,
      summary: 'Install a third-party plugin from its npm-packed .tgz (the request body). It stays disabled (pending_grant) until its capabilities are granted',
      response: { status: 201, schema: INSTALLED },
      handler: async (ctx, { principal }) => {
        const installed = await installer.install(packageBody(ctx), principal);
        mark(ctx, installed.id);
        return installed;
      },
    },
    {
      method: 'PUT', path: '/api/v1/plugins/:id', access: 'plugin.manage', tag: 'plugins', ...upload,
      summary: 'Upgrade an installed plugin with a new .tgz of the same id. New capability requests disable it until granted; instances the new config schema rejects are listed',
      response: { schema: { ...INSTALLED, properties: { ...(INSTALLED.properties as object), invalid_instances: { type: 'array', items: { type: 'object' } } } } },
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        return installer.upgrade(params.id, packageBody(ctx), principal);
      },
    },
    {
      method: 'POST', path: '/api/v1/plugins/:id/grant', access: 'plugin.manage', tag: 'plugins',
      summary: 'Grant an installed plugin some or all of the capabilities it asks for, and enable it. Anything it did not ask for is refused',
      body: { type: 'object', additionalProperties: false, required: ['capabilities'], properties: { capabilities: CAPABILITIES } },
      response: { schema: INSTALLED },
      handler: async (ctx, { params, body, principal }) => {
        mark(ctx, params.id);
        return installer.grant(params.id, body.capabilities as PluginCapabilities, principal);
      },
    },
    {
      method: 'POST', path: '/api/v1/plugins/:id/enable', access: 'plugin.manage', tag: 'plugins',
      summary: 'Enable an installed plugin whose capabilities have been granted',
      response: { schema: INSTALLED },
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        return installer.setEnabled(params.id, true, principal);
      },
    },
    {
      method: 'POST', path: '/api/v1/plugins/:id/disable', access: 'plugin.manage', tag: 'plugins',
      summary: 'Disable an installed plugin: its instances stop working (shown as invalid) until it is enabled again',
      body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } } },
      response: { schema: INSTALLED },
      handler: async (ctx, { params, body, principal }) => {
        mark(ctx, params.id);
        return installer.setEnabled(params.id, false, principal, body.reason);
      },
    },
    {
      method: 'DELETE', path: '/api/v1/plugins/:id', access: 'plugin.manage', tag: 'plugins',
      summary: 'Remove an installed plugin (409 while issuers, targets or notifiers use it)',
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        await installer.remove(params.id, principal);
      },
    },
  ];
}
