import { auditRoutes } from './audit/routes.js';
import type { IdentityService } from './auth/identity-service.js';
import { authRoutes } from './auth/routes.js';
import type { RouteDef } from './http/route.js';
import type { KernelServices } from './kernel-services.js';
import { systemRoutes } from './resources/system/routes.js';

/** Every route the kernel serves. The RBAC matrix test and the OpenAPI document read this table. */
export function kernelRoutes(k: KernelServices, identity: IdentityService, all: () => RouteDef[]): RouteDef[] {
  return [
    ...systemRoutes(k, all),
    ...authRoutes(k, identity),
    ...auditRoutes(k),
  ];
}
