import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { instanceRoutes } from '../../plugins/instances/instance-routes.js';

/**
 * Issuers: configured instances of issuer plugins. Grants of issuer.* may be
 * scoped to one issuer; such a caller sees only the issuers granted to it.
 */
export function issuerRoutes(k: KernelServices): RouteDef[] {
  return instanceRoutes(k, {
    kind: 'issuer',
    idKind: 'issuer',
    table: 'issuers',
    basePath: '/api/v1/issuers',
    tag: 'issuers',
    noun: 'issuer',
    permissions: { read: 'issuer.read', create: 'issuer.create', update: 'issuer.edit', delete: 'issuer.delete' },
    scopedById: 'issuer_id',
    extraColumns: ['source', 'test_status', 'tested_at'],
  });
}
