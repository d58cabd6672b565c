import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { caFailureResult, type CaSignResult, type Json } from '@certctl/sdk';
import type { ConfigCipher } from '../../secrets/config-cipher.js';
import { PluginEventBus } from '../broker/plugin-events.js';
import type { PluginEntry } from '../catalog.js';
import type { PluginSource } from '../discovery.js';
import { WorkerRunner, type WorkerRunnerOptions } from '../runners/worker/worker-runner.js';
import { methodProblem, resultProblem } from './contract-shapes.js';
import { PluginCallError, type CapabilityBroker, type GrantedCapabilities, type PluginFailureCode, type PluginRunner, type RunnerTier } from './contracts.js';
import { ConfigGrantsBroker } from './config-grants.js';
import { InstanceHealth } from './instance-health.js';
import { InstanceConfigLoader, type InstanceRow } from './instance-loader.js';
import { jsonProblem } from './json-value.js';

/** Whatever lists plugins: the boot catalog, or one that also holds installed plugins. */
export interface PluginCatalogView {
  get(id: string): PluginEntry | undefined;
  /** Called when installed plugins change (PluginCatalog provides it). */
  onChange?(fn: () => void): () => void;
}

export type IsolateRunnerFactory = (entry: PluginEntry, grants: GrantedCapabilities, broker: CapabilityBroker) => PluginRunner | Promise<PluginRunner>;
export type GrantsLookup = (pluginId: string) => GrantedCapabilities | null | undefined | Promise<GrantedCapabilities | null | undefined>;

export interface PluginHostOptions {
  catalog: PluginCatalogView;
  knex: Knex;
  cipher: ConfigCipher;
  log: Logger;
  broker: CapabilityBroker;
  /** Where events.emit publishes in this process (the broker's bus); exposed as `pluginHost.events`. */
  events?: PluginEventBus;
  /** Builds the sandboxed runner for third-party plugins (kernel/src/plugins/runners/isolate). */
  isolateRunnerFactory?: IsolateRunnerFactory;
  /** The capabilities the operator granted an installed plugin; defaults to the catalog entry's `grants`. */
  grantsFor?: GrantsLookup;
  worker?: Omit<WorkerRunnerOptions, 'log'>;
  defaultTimeoutMs?: number;
  maxTimeoutMs?: number;
}

/**
 * Sources whose plugins are first-party: trusted code from this repository's
 * plugins/ or an operator-controlled CERTCTL_PLUGIN_DIRS entry. They run in
 * worker threads with what their manifest asks for. Everything else is third-party.
 */
const FIRST_PARTY_SOURCES: ReadonlySet<PluginSource> = new Set(['workspace', 'extra']);

export interface PluginCallOptions {
  /** Per-call deadline from now; defaults to 30 s, capped at 10 min. */
  timeoutMs?: number;
  /**
   * The instance's row as the caller read it just now (the issuance service reads
   * the issuer with the certificate): used instead of reading it again. Checked
   * like a row the host read itself.
   */
  instanceRow?: InstanceRow;
}

/**
 * The kernel's one door to plugin code. A call names a plugin, an instance
 * (issuer/target/notifier row) and a contract method; the host checks the
 * plugin is enabled and has the method, loads the instance's validated config
 * without secrets, runs the method in the plugin's runner (a worker pool for
 * first-party plugins, an isolate in a child process for third-party ones) with
 * a deadline, and checks the result against the contract before returning it.
 * Every failure is a PluginCallError with a code the caller can act on.
 * Runners start on first use and stay until close() or reload().
 */
export class PluginHost {
  /** One runner per plugin, tied to the catalog entry it was built from (a new entry means a new runner). */
  private readonly runners = new Map<string, { entry: PluginEntry; runner: Promise<PluginRunner>; grants: Promise<GrantedCapabilities> }>();
  private closed = false;
  /** Last error / last success of each instance, shown by the instance API. */
  private readonly health: InstanceHealth;
  /** Instance configs, re-opened only when their row changes. */
  private readonly instances: InstanceConfigLoader;

  private readonly unsubscribe: (() => void) | undefined;
  /** The broker runners talk to: the kernel's, widened per instance by config-derived http hosts. */
  private readonly broker: ConfigGrantsBroker;
  /** Events plugins emitted (capability `events`): `pluginHost.events.on('event', fn)`. Each is also an audit row. */
  readonly events: PluginEventBus;

  constructor(private readonly opts: PluginHostOptions) {
    this.events = opts.events ?? new PluginEventBus();
    this.health = new InstanceHealth(opts.knex, opts.log);
    this.instances = new InstanceConfigLoader(opts.knex, opts.cipher);
    this.broker = new ConfigGrantsBroker(opts.broker);
    // Runners of plugins that were removed, disabled or replaced stop at once rather than at their next call.
    this.unsubscribe = opts.catalog.onChange?.(() => {
      for (const [id, slot] of [...this.runners]) {
        const now = opts.catalog.get(id);
        if (now !== slot.entry) void this.reload(id);
      }
    });
  }

  /**
   * The tier a plugin runs in, or why it cannot run. The catalog decides the
   * runtime (installed plugins always `isolate`, null for a disabled entry); a
   * worker is refused to any plugin whose source is not first-party, whatever its
   * entry says.
   */
  tierFor(entry: PluginEntry): { tier: RunnerTier; trusted: boolean } | { reason: string } {
    const trusted = FIRST_PARTY_SOURCES.has(entry.source);
    const runtime = entry.runtime;
    if (runtime === 'worker') return trusted ? { tier: 'worker', trusted } : { reason: 'only first-party plugins run in worker threads' };
    if (runtime !== 'isolate') return { reason: 'the manifest lists no runtime this host can use' };
    if (!this.opts.isolateRunnerFactory) return { reason: 'the isolate runner is not available in this kernel' };
    return { tier: 'isolate', trusted };
  }

  async call(pluginId: string, instanceId: string | null, method: string, request: Json, options: PluginCallOptions = {}): Promise<Json> {
    const started = Date.now();
    const fail = (code: PluginFailureCode, message: string) => new PluginCallError(code, message, pluginId);
    if (this.closed) throw fail('unavailable', 'the plugin host is shut down');
    const entry = this.opts.catalog.get(pluginId);
    if (!entry) throw fail('unavailable', `no plugin "${pluginId}" is installed`);
    if (entry.status !== 'enabled' || !entry.manifest || !entry.kind) throw fail('unavailable', `plugin ${pluginId} is disabled: ${entry.reason ?? 'unknown reason'}`);
    const notSupported = methodProblem(entry.kind, entry.features, method);
    if (notSupported) throw fail('not_supported', `${pluginId}.${method}: ${notSupported}`);
    const badRequest = jsonProblem(request);
    if (badRequest) throw new TypeError(`plugin request must be plain JSON: ${badRequest.replace(/^result/, 'request')}`);

    const timeoutMs = Math.min(Math.max(1, options.timeoutMs ?? this.opts.defaultTimeoutMs ?? 30_000), this.opts.maxTimeoutMs ?? 600_000);
    const deadline = started + timeoutMs;
    const instance = await this.instances.load(entry, instanceId, options.instanceRow);
    if ('problem' in instance) throw fail('unavailable', instance.problem);
    this.broker.setInstanceHosts(pluginId, instanceId, instance.httpHosts);
    // From here on a failure belongs to the instance: it is recorded on its row (never failing the call itself).
    const kind = entry.kind;
    const failed = async (e: PluginCallError) => {
      if (instanceId !== null) await this.health.failed(kind, instanceId, e);
      return e;
    };

    let result: Json;
    // One slot for the call: a sign order is signed with the grants of the runner that answered it.
    const slot = this.runnerFor(entry);
    try {
      const runner = await slot.runner;
      result = await runner.call({ pluginId, instanceId, method, request, config: instance.config, deadline });
    } catch (err) {
      const e = err instanceof PluginCallError ? err : fail('crashed', `${pluginId}.${method}: the runner failed: ${(err as Error)?.message ?? String(err)}`);
      this.opts.log.warn({ plugin_id: pluginId, instance_id: instanceId, method, code: e.code, ms: Date.now() - started, err: e.message }, 'plugin call failed');
      throw await failed(e);
    }
    const problem = resultProblem(entry.kind, method, result);
    if (problem) {
      this.opts.log.warn({ plugin_id: pluginId, instance_id: instanceId, method, code: 'bad_result', err: problem }, 'plugin call failed');
      throw await failed(fail('bad_result', `${pluginId}.${method}: ${problem}`));
    }
    if (kind === 'issuer' && isSignOrder(result)) {
      try {
        result = await this.signOrder(entry.id, await slot.grants, instanceId, result.sign, deadline);
      } catch (err) {
        throw await failed(err as PluginCallError);
      }
    }
    if (instanceId !== null) await this.health.succeeded(kind, instanceId);
    return result;
  }

  /**
   * A sign order (SDK SignOrder) from issue or renew: signed through the broker's
   * ca.sign as if the plugin had called it in this call (its `ca` grant, the
   * instance being its own, the request's checks), and answered as the issued
   * certificate, or as `denied`/`failed` the way the SDK maps a refused ca.sign.
   * A capability refusal fails the call.
   */
  private async signOrder(pluginId: string, grants: GrantedCapabilities, instanceId: string | null, order: Json, deadline: number): Promise<Json> {
    try {
      const signed = (await this.broker.handle({ pluginId, instanceId, grants, deadline }, { op: 'ca.sign', request: order })) as unknown as CaSignResult;
      return { status: 'issued', certificatePem: signed.certificatePem, chainPem: signed.chainPem };
    } catch (err) {
      if (err instanceof PluginCallError) throw err;
      return caFailureResult(err) as unknown as Json;
    }
  }

  private runnerFor(entry: PluginEntry): { runner: Promise<PluginRunner>; grants: Promise<GrantedCapabilities> } {
    const cached = this.runners.get(entry.id);
    if (cached?.entry === entry) return cached;
    // The plugin was upgraded, re-granted or re-enabled since: retire the old runner.
    if (cached) void cached.runner.then((r) => r.close(), () => {});
    const grants = this.grantsOf(entry);
    const runner = grants.then((g) => this.createRunner(entry, g));
    const slot = { entry, runner, grants };
    // A runner that could not be built is retried on the next call.
    runner.catch(() => { if (this.runners.get(entry.id) === slot) this.runners.delete(entry.id); });
    this.runners.set(entry.id, slot);
    return slot;
  }

  /** First-party plugins get what their manifest asks for; installed ones what the operator granted. */
  private async grantsOf(entry: PluginEntry): Promise<GrantedCapabilities> {
    const tier = this.tierFor(entry);
    if ('trusted' in tier && tier.trusted) return entry.manifest?.capabilities ?? {};
    return ((this.opts.grantsFor ? await this.opts.grantsFor(entry.id) : entry.grants) ?? {});
  }

  private async createRunner(entry: PluginEntry, grants: GrantedCapabilities): Promise<PluginRunner> {
    const tier = this.tierFor(entry);
    if ('reason' in tier) throw new PluginCallError('unavailable', `plugin ${entry.id} cannot run: ${tier.reason}`, entry.id);
    if (tier.tier === 'worker') return new WorkerRunner(entry, grants, this.broker, { ...this.opts.worker, log: this.opts.log });
    try {
      return await this.opts.isolateRunnerFactory!(entry, grants, this.broker);
    } catch (err) {
      throw new PluginCallError('unavailable', `plugin ${entry.id}: the isolate runner could not start: ${(err as Error)?.message ?? String(err)}`, entry.id);
    }
  }

  /** Stops a plugin's runner so the next call starts a fresh one (after an upgrade, a grant change or a disable). */
  async reload(pluginId: string): Promise<void> {
    const slot = this.runners.get(pluginId);
    this.runners.delete(pluginId);
    const runner = await slot?.runner.catch(() => null);
    await runner?.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    const all = [...this.runners.values()];
    this.runners.clear();
    await Promise.all(all.map(async (slot) => (await slot.runner.catch(() => null))?.close()));
  }
}

function isSignOrder(result: Json): result is { status: 'sign'; sign: Json } {
  return typeof result === 'object' && result !== null && !Array.isArray(result) && result.status === 'sign';
}
