import { auditRoutes } from './audit/routes.js';
import type { IdentityService } from './auth/identity-service.js';
import { authRoutes } from './auth/routes.js';
import type { RouteDef } from './http/route.js';
import type { KernelServices } from './kernel-services.js';
import { systemRoutes } from './resources/system/routes.js';
import { agentGroupRoutes } from './resources/agent-groups/routes.js';
import { agentRoutes } from './resources/agents/routes.js';
import { notificationRoutes } from './resources/notifications/routes.js';
import { ownerRoutes } from './resources/owners/routes.js';
import { policyRoutes } from './resources/policies/routes.js';
import { profileRoutes } from './resources/profiles/routes.js';
import { renewalPolicyRoutes } from './resources/renewal-policies/routes.js';
import { teamRoutes } from './resources/teams/routes.js';
import { pluginRoutes } from './plugins/routes.js';
import { pluginManageRoutes } from './plugins/manage-routes.js';
import { issuerRoutes } from './resources/issuers/routes.js';
import { notifierRoutes } from './resources/notifiers/routes.js';
import { notifierTestRoutes } from './notifications/notifier-test-route.js';
import { targetRoutes } from './resources/targets/routes.js';
import { certificateRoutes } from './resources/certificates/routes.js';
import { jobRoutes } from './resources/jobs/routes.js';
import { approvalRoutes } from './approvals/routes.js';
import { agentProtocolRoutes } from './resources/agents/agent-protocol.js';
import { discoveryRoutes } from './resources/discovery/routes.js';
import { dashboardRoutes } from './resources/dashboard/routes.js';
import { revocationRoutes } from './revocation/index.js';
import { caHierarchyRoutes } from './ca/ca-routes.js';
import { protocolRoutes } from './protocols/index.js';
import { acmeHttp01Routes } from './protocols/acme-http01.js';
import { digestRoutes } from './notifications/digest-routes.js';

/** Every route the kernel serves. The RBAC matrix test and the OpenAPI document read this table. */
export function kernelRoutes(k: KernelServices, identity: IdentityService, all: () => RouteDef[]): RouteDef[] {
  return [
    ...systemRoutes(k, all),
    ...authRoutes(k, identity),
    ...auditRoutes(k),
    ...teamRoutes(k), ...ownerRoutes(k), ...agentRoutes(k), ...agentGroupRoutes(k),
    ...profileRoutes(k), ...policyRoutes(k), ...renewalPolicyRoutes(k), ...notificationRoutes(k),
    ...pluginRoutes(k), ...pluginManageRoutes(k), ...issuerRoutes(k), ...targetRoutes(k), ...notifierRoutes(k), ...notifierTestRoutes(k), ...digestRoutes(k),
    ...certificateRoutes(k), ...jobRoutes(k), ...approvalRoutes(k),
    ...agentProtocolRoutes(k), ...discoveryRoutes(k),
    ...dashboardRoutes(k),
    ...revocationRoutes(k),
    ...caHierarchyRoutes(k),
    ...protocolRoutes(k),
    ...acmeHttp01Routes(k),
  ];
}
