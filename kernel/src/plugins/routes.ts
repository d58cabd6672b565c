import { PLUGIN_KINDS } from '@certctl/sdk';
import { appError } from '../errors.js';
import type { ListSpec } from '../http/list-query.js';
import type { RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import type { PluginEntry } from './catalog.js';
import { listInMemory } from './catalog-list.js';
import { publicConfigSchema } from './config-schema.js';

const SUMMARY_FIELDS = ['id', 'kind', 'name', 'version', 'description', 'status', 'reason', 'source', 'features', 'capabilities'] as const;

function summary(p: PluginEntry) {
  return {
    id: p.id,
    kind: p.kind,
    name: p.name,
    version: p.version,
    description: p.description,
    status: p.status,
    reason: p.reason,
    source: p.source,
    features: p.features,
    capabilities: p.capabilities,
  };
}

function detail(p: PluginEntry) {
  const m = p.manifest;
  return {
    ...summary(p),
    api_version: m?.apiVersion ?? null,
    engines: m?.engines ?? null,
    runtimes: m?.runtimes ?? [],
    secret_fields: p.secretFields,
    has_ui_schema: Boolean(m?.uiSchema),
    runtime: p.runtime,
    granted_capabilities: p.grants,
    installation: p.installation && {
      package_name: p.installation.packageName,
      requested_capabilities: p.installation.requested,
      granted_capabilities: p.installation.granted,
      grant_pending: p.installation.grantPending,
      enabled: p.installation.enabled,
      installed_by: p.installation.installedBy,
      installed_at: p.installation.installedAt,
      updated_at: p.installation.updatedAt,
    },
  };
}

const LIST: ListSpec = {
  sortable: { id: 'id', name: 'name', kind: 'kind', status: 'status' },
  defaultSort: 'id',
  nullable: ['kind'],
  filters: {
    kind: { description: 'Plugin kind', enum: PLUGIN_KINDS },
    status: { description: 'enabled or disabled', enum: ['enabled', 'disabled'] },
  },
  fields: SUMMARY_FIELDS,
};

/** The plugin catalog, read-only: what was discovered at boot and why anything is disabled. */
export function pluginRoutes(k: KernelServices): RouteDef[] {
  const find = (id: string) => {
    const p = k.plugins.get(id);
    if (!p) throw appError('NOT_FOUND', `plugin ${id} not found`);
    return p;
  };
  return [
    {
      method: 'GET', path: '/api/v1/plugins', access: 'plugin.read', tag: 'plugins', summary: 'List discovered plugins, enabled and disabled (with the reason)', list: LIST,
      handler: (_ctx, { list }) => {
        // Read per request: installed plugins come and go. Ids can repeat (a duplicate is
        // listed, disabled); the catalog position keeps keys unique.
        const all = k.plugins.list();
        const keyOf = new Map(all.map((p, i) => [p, `${p.id}\u0000${String(i).padStart(5, '0')}`]));
        return listInMemory(all, list!, {
          key: (p) => keyOf.get(p)!,
          sortValue: (p, column) => (summary(p) as Record<string, unknown>)[column] as string | null,
          filters: {
            kind: (p, values) => p.kind !== null && values.includes(p.kind),
            status: (p, values) => values.includes(p.status),
          },
          serialize: summary,
        });
      },
    },
    {
      method: 'GET', path: '/api/v1/plugins/:id', access: 'plugin.read', tag: 'plugins', summary: 'Get one plugin and its manifest facts',
      handler: (ctx, { params }) => {
        ctx.state.auditResource = { type: 'plugin', id: params.id };
        return detail(find(params.id));
      },
    },
    {
      method: 'GET', path: '/api/v1/plugins/:id/schema', access: 'plugin.read', tag: 'plugins',
      summary: 'The config schema and UI schema a form is rendered from (secret fields carry no defaults)',
      handler: (ctx, { params }) => {
        ctx.state.auditResource = { type: 'plugin', id: params.id };
        const p = find(params.id);
        if (!p.manifest) throw appError('INVALID_STATE', `plugin ${params.id} has no usable manifest: ${p.reason ?? 'unknown reason'}`);
        return {
          id: p.id,
          status: p.status,
          config_schema: publicConfigSchema(p.manifest.configSchema),
          ui_schema: p.manifest.uiSchema ?? null,
          secret_fields: p.secretFields,
        };
      },
    },
  ];
}
