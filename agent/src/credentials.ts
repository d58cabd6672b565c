import path from 'node:path';
import type { AgentHostFacts, AgentRegisterRequest, AgentRegisterResponse } from '@certctl/kernel';
import { AgentConfigError, type AgentConfig } from './config.js';
import { ServerRefused, type ControlPlaneClient } from './control-plane.js';
import { readOptional, writePrivateFile } from './private-files.js';

/** What the agent keeps after registering: its id and API key (0600 in the state directory). */
export interface StoredCredentials {
  agent_id: string;
  api_key: string;
  server_url: string;
  registered_at: string;
}

export interface AgentIdentity {
  agentId: string;
  apiKey: string;
  source: 'stored' | 'configured' | 'registered';
}

export const credentialsFile = (stateDir: string) => path.join(stateDir, 'credentials.json');

export async function loadCredentials(stateDir: string): Promise<StoredCredentials | null> {
  const text = await readOptional(credentialsFile(stateDir));
  if (!text) return null;
  const c = JSON.parse(text) as Partial<StoredCredentials>;
  if (typeof c.agent_id !== 'string' || typeof c.api_key !== 'string') throw new AgentConfigError(`${credentialsFile(stateDir)} is not a credentials file; remove it to register again`);
  return c as StoredCredentials;
}

/**
 * Who this agent is: a key stored by an earlier registration (reused on every
 * start), else CERTCTL_AGENT_ID with CERTCTL_API_KEY, else a registration with
 * CERTCTL_AGENT_BOOTSTRAP_TOKEN whose key is stored before it is used. Network
 * trouble comes back as ServerUnavailable for the caller to retry; a refusal
 * (bad token, taken id) is a configuration error.
 */
export async function establishIdentity(config: AgentConfig, client: ControlPlaneClient, facts: AgentHostFacts): Promise<AgentIdentity> {
  const stored = await loadCredentials(config.stateDir);
  if (stored && (!config.agentId || config.agentId === stored.agent_id)) return { agentId: stored.agent_id, apiKey: stored.api_key, source: 'stored' };
  if (stored && config.agentId && config.agentId !== stored.agent_id) {
    throw new AgentConfigError(`CERTCTL_AGENT_ID is ${config.agentId} but ${credentialsFile(config.stateDir)} belongs to agent ${stored.agent_id}; remove the file or fix the id`);
  }
  if (config.apiKey && config.agentId) return { agentId: config.agentId, apiKey: config.apiKey, source: 'configured' };
  if (!config.bootstrapToken) throw new AgentConfigError('no credentials: set CERTCTL_AGENT_BOOTSTRAP_TOKEN to register, or CERTCTL_AGENT_ID with CERTCTL_API_KEY');

  const body: AgentRegisterRequest = { name: config.agentName, ...(config.agentId ? { id: config.agentId } : {}), ...facts };
  let res: AgentRegisterResponse;
  try {
    res = await client.request<AgentRegisterResponse>({ method: 'POST', path: '/api/v1/agents/register', bearer: config.bootstrapToken, body });
  } catch (err) {
    if (err instanceof ServerRefused) throw new AgentConfigError(`registration refused: ${err.message}`);
    throw err;
  }
  if (!res?.agent?.id || !res?.api_key?.key) throw new AgentConfigError('registration answered without an agent id and key');
  await writePrivateFile(credentialsFile(config.stateDir), JSON.stringify({ agent_id: res.agent.id, api_key: res.api_key.key, server_url: config.serverUrl, registered_at: new Date().toISOString() } satisfies StoredCredentials));
  return { agentId: res.agent.id, apiKey: res.api_key.key, source: 'registered' };
}
