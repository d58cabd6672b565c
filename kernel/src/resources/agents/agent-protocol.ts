import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { agentCsrRoute } from './agent-csr.js';
import { agentRegisterRoute } from './agent-register.js';
import { agentResultRoutes } from './agent-results.js';
import { agentWorkRoute } from './agent-work.js';

/** The control plane's side of the agent protocol (agent-wire.ts); heartbeat lives with the agent resource. */
export function agentProtocolRoutes(k: KernelServices): RouteDef[] {
  return [agentRegisterRoute(k), agentWorkRoute(k), agentCsrRoute(k), ...agentResultRoutes(k)];
}
