import { API_VERSION, VERSION } from '../../version.js';
import { buildOpenApi } from '../../http/openapi.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';

/** Probes, version and the OpenAPI document. */
export function systemRoutes(k: KernelServices, allRoutes: () => RouteDef[]): RouteDef[] {
  let openapi: Record<string, unknown> | null = null;
  return [
    {
      method: 'GET', path: '/health', access: 'public', tag: 'system', summary: 'Liveness: the process is serving',
      response: { schema: { type: 'object', properties: { status: { const: 'healthy' } } } },
      handler: () => ({ status: 'healthy' }),
    },
    {
      method: 'GET', path: '/ready', access: 'public', tag: 'system', summary: 'Readiness: the database answers and the kernel is not draining',
      handler: async (ctx) => {
        const checks: Record<string, string> = {};
        try {
          await k.db.knex.raw('select 1');
          checks.database = 'ok';
        } catch {
          checks.database = 'unavailable';
        }
        checks.lifecycle = k.isDraining() ? 'draining' : 'ok';
        const ready = Object.values(checks).every((v) => v === 'ok');
        ctx.status = ready ? 200 : 503;
        ctx.body = { status: ready ? 'ready' : 'not_ready', checks };
        return undefined;
      },
    },
    {
      method: 'GET', path: '/api/v1/version', access: 'authenticated', tag: 'system', summary: 'Server version',
      handler: () => ({ version: VERSION, api_version: API_VERSION, node: process.version, database: k.db.dialect }),
    },
    {
      method: 'GET', path: '/api/v1/openapi.json', access: 'public', tag: 'system', summary: 'This API as an OpenAPI 3.1 document',
      handler: () => (openapi ??= buildOpenApi(allRoutes(), { version: VERSION, serverUrl: k.config.publicBaseUrl })),
    },
    {
      method: 'GET', path: '/api/v1/scheduler', access: 'system.read', tag: 'system', summary: 'Background loops and their last runs on this replica',
      handler: () => ({ replica_id: k.replicaId, loops: k.scheduler.status() }),
    },
  ];
}
