import type { Logger } from 'pino';
import type { Json, PluginManifest } from '@certctl/sdk';
import { loadPluginCatalog, PluginCallError, VERSION, WorkerRunner, type PluginCatalog, type PluginEntry } from './kernel-parts.js';
import { AgentCapabilityBroker } from './agent-broker.js';
import { deriveCallGrants, type CallGrants, type LocalGrantPolicy } from './grants.js';
import type { LocalKv } from './local-kv.js';

export interface TargetInstance {
  id: string;
  /** The target plugin's id. */
  type: string;
  config: Record<string, unknown>;
}

/** The target cannot be run here (unknown or disabled plugin, config its schema refuses). */
export class TargetUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TargetUnavailable';
  }
}

/** Takes the secret fields (dot paths) out of a config: the plugin sees them only through secrets.get. */
export function splitSecrets(config: Record<string, unknown>, secretPaths: string[]): { config: Record<string, Json>; secrets: Record<string, string> } {
  const copy = structuredClone(config) as Record<string, Json>;
  const secrets: Record<string, string> = {};
  for (const dotted of secretPaths) {
    const parts = dotted.split('.');
    let node: Record<string, Json> | undefined = copy;
    for (const p of parts.slice(0, -1)) {
      const next: Json | undefined = node?.[p];
      node = next && typeof next === 'object' && !Array.isArray(next) ? next : undefined;
    }
    const last = parts[parts.length - 1];
    if (!node || !Object.hasOwn(node, last)) continue;
    const value = node[last];
    if (typeof value === 'string') secrets[dotted] = value;
    else if (value !== null) secrets[dotted] = JSON.stringify(value);
    delete node[last];
  }
  return { config: copy, secrets };
}

/** One target instance's calls for one job (deploy, then perhaps rollback), with that job's grants. */
export interface TargetSession {
  readonly pluginId: string;
  readonly grants: CallGrants;
  call<T>(method: string, request: Json, timeoutMs: number): Promise<T>;
  close(): Promise<void>;
}

/**
 * The agent's plugin host: first-party target plugins (the workspace's plugins/
 * and CERTCTL_PLUGIN_DIRS), found and checked by the kernel's catalog code and run
 * in the kernel's Piscina worker runner. Each job gets its own runner and broker,
 * because what a plugin may touch depends on the job (its target's config, its key
 * file); a job's thread lives for the job only.
 */
export class AgentPluginHost {
  readonly catalog: PluginCatalog;

  constructor(private readonly opts: { pluginDirs: string[]; log: Logger; kv: LocalKv; policy: LocalGrantPolicy; workspacePluginsDir?: string | null }) {
    this.catalog = loadPluginCatalog({ workspacePluginsDir: opts.workspacePluginsDir, extraDirs: opts.pluginDirs, kernelVersion: VERSION, log: opts.log });
  }

  /** Enabled target plugins this agent can run (reported in heartbeats). */
  targetTypes(): string[] {
    return this.catalog.list().filter((e) => e.kind === 'target' && e.status === 'enabled' && e.runtime === 'worker').map((e) => e.id);
  }

  private resolve(type: string): PluginEntry & { manifest: PluginManifest } {
    const found = this.catalog.resolve(type, 'target');
    if ('reason' in found) throw new TargetUnavailable(`target plugin ${JSON.stringify(type)} cannot run on this agent: ${found.reason}`);
    if (found.plugin.runtime !== 'worker') throw new TargetUnavailable(`target plugin ${type} is not a first-party worker plugin`);
    return found.plugin;
  }

  open(target: TargetInstance, opts: { keyPath?: string } = {}): TargetSession {
    const entry = this.resolve(target.type);
    const checked = structuredClone(target.config);
    if (!entry.validateConfig!(checked)) {
      const first = entry.validateConfig!.errors?.[0];
      throw new TargetUnavailable(`target ${target.id}: its config does not fit plugin ${entry.id}'s schema (${first ? `${first.instancePath || '/'} ${first.message}` : 'invalid'})`);
    }
    const grants = deriveCallGrants({ manifest: entry.manifest.capabilities ?? {}, configSchema: entry.manifest.configSchema, config: checked, ...(opts.keyPath ? { keyPath: opts.keyPath } : {}), policy: this.opts.policy });
    const log = this.opts.log.child({ plugin_id: entry.id, target_id: target.id });
    if (grants.refused.length) log.warn({ refused: grants.refused }, 'some capabilities were not granted to this target');
    const { config, secrets } = splitSecrets(checked, entry.secretFields);
    const broker = new AgentCapabilityBroker({ grants, secrets, kv: this.opts.kv, log, protectedDirs: this.opts.policy.protectedDirs, allowedPaths: this.opts.policy.allowedPaths });
    const runner = new WorkerRunner(entry, {}, broker, { log, minThreads: 0, maxThreads: 1, idleTimeoutMs: 30_000 });
    return {
      pluginId: entry.id,
      grants,
      call: async <T>(method: string, request: Json, timeoutMs: number) => (await runner.call({ pluginId: entry.id, instanceId: target.id, method, request, config, deadline: Date.now() + timeoutMs })) as T,
      close: () => runner.close(),
    };
  }
}

export const describeCallError = (err: unknown): string =>
  err instanceof PluginCallError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
