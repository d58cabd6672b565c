import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AgentWorkItem, AgentWorkResponse, DeployResultRequest, DeployWorkItem } from '@certctl/kernel';
import { realDirs } from './agent-broker.js';
import { AgentPluginHost } from './agent-plugin-host.js';
import { Backoff, ReachabilityLog, sleep } from './backoff.js';
import type { AgentConfig } from './config.js';
import { ControlPlaneClient, ServerRefused, ServerUnavailable, trustAgent } from './control-plane.js';
import { establishIdentity, type AgentIdentity } from './credentials.js';
import { CsrWorkRefused, makeCsrForItem } from './csr-work.js';
import { runDeployItem } from './deploy-work.js';
import { reportBatches, scanForCertificates } from './discovery-scan.js';
import { hostFacts } from './host-facts.js';
import { KeyStore } from './key-store.js';
import { LocalKv } from './local-kv.js';
import { ensurePrivateDir } from './private-files.js';

const BACKOFF_BASE_MS = 500;
/** How long a finished deploy's result is retried while the control plane is away. */
const RESULT_RETRY_MS = 10 * 60_000;
/** A CSR request answered (or refused) is not answered again for this long. */
const CSR_QUIET_MS = 5 * 60_000;

/**
 * `certctl agent`: registers (or reuses its stored key), then runs three loops
 * until stopped: heartbeats with host facts, polling for work (CSRs and deploys,
 * one item at a time), and filesystem discovery. While the control plane is away
 * the work loop backs off exponentially with jitter and says so once.
 */
export class AgentDaemon {
  private readonly abort = new AbortController();
  private readonly reach: ReachabilityLog;
  private readonly backoff: Backoff;
  private client: ControlPlaneClient | null = null;
  private host: AgentPluginHost | null = null;
  private keys: KeyStore | null = null;
  private identity: AgentIdentity | null = null;
  private running: Promise<void> | null = null;
  private readonly csrHandled = new Map<string, number>();

  constructor(private readonly config: AgentConfig, private readonly log: Logger) {
    this.reach = new ReachabilityLog(log);
    this.backoff = new Backoff(Math.min(BACKOFF_BASE_MS, config.maxBackoffMs), config.maxBackoffMs);
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get agentId(): string | null {
    return this.identity?.agentId ?? null;
  }

  /** Runs until stop(); rejects only for configuration errors. */
  run(): Promise<void> {
    this.running ??= this.main();
    return this.running;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running?.catch(() => {});
  }

  private async main(): Promise<void> {
    const c = this.config;
    await ensurePrivateDir(c.keyDir);
    await ensurePrivateDir(c.stateDir);
    // Real paths, so the broker's protected-directory check and the key-file grant compare like with like.
    const keyDir = await fs.realpath(c.keyDir);
    const stateDir = await fs.realpath(c.stateDir);
    this.keys = new KeyStore(keyDir);
    const kv = new LocalKv(path.join(stateDir, 'kv'));
    const allowedPaths = await realDirs(c.allowedPaths);
    this.host = new AgentPluginHost({ pluginDirs: c.pluginDirs, log: this.log, kv, policy: { allowedPaths, allowedCommands: c.allowedCommands, protectedDirs: [keyDir, stateDir] } });
    this.client = new ControlPlaneClient(c.serverUrl, trustAgent(c.trust));
    try {
      this.identity = await this.untilReachable(() => establishIdentity(c, this.client!, hostFacts()));
      if (!this.identity) return;
      this.log.info({ agent_id: this.identity.agentId, credentials: this.identity.source, server: c.serverUrl, targets: this.host.targetTypes() }, 'agent started');
      await Promise.all([this.heartbeatLoop(), this.workLoop(), this.discoveryLoop()]);
    } finally {
      this.client.close();
      if (this.identity) this.log.info('agent stopped');
    }
  }

  /** Retries `fn` with backoff while the control plane is away; null when stopped first. */
  private async untilReachable<T>(fn: () => Promise<T>): Promise<T | null> {
    while (!this.signal.aborted) {
      try {
        const out = await fn();
        this.reach.succeeded();
        this.backoff.reset();
        return out;
      } catch (err) {
        if (!(err instanceof ServerUnavailable)) throw err;
        const wait = this.backoff.next();
        this.reach.failed(err, wait);
        await sleep(wait, this.signal);
      }
    }
    return null;
  }

  private api<T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> {
    return this.client!.request<T>({ method, path: `/api/v1/agents/${encodeURIComponent(this.identity!.agentId)}${route}`, bearer: this.identity!.apiKey, ...(body !== undefined ? { body } : {}) });
  }

  private async heartbeatLoop(): Promise<void> {
    while (!this.signal.aborted) {
      try {
        await this.api('POST', '/heartbeat', { ...hostFacts(), capabilities: this.host!.targetTypes().slice(0, 100).filter((t) => t.length <= 64) });
        this.reach.succeeded();
      } catch (err) {
        if (err instanceof ServerUnavailable) this.reach.failed(err);
        else this.log.error({ err: (err as Error).message }, 'heartbeat refused');
      }
      await sleep(this.config.heartbeatIntervalMs, this.signal);
    }
  }

  private async workLoop(): Promise<void> {
    let refusedWith = '';
    while (!this.signal.aborted) {
      let wait = this.config.pollIntervalMs;
      try {
        const work = await this.api<AgentWorkResponse>('GET', '/work');
        this.reach.succeeded();
        this.backoff.reset();
        refusedWith = '';
        for (const item of Array.isArray(work?.data) ? work.data : []) {
          if (this.signal.aborted) break;
          await this.handle(item);
        }
        // 0 from the server: a full batch, more is waiting. Otherwise the server's hint counts
        // unless the operator chose an interval (CERTCTL_AGENT_POLL_INTERVAL).
        const hint = work?.poll_after_ms;
        if (hint === 0) wait = 0;
        else if (!this.config.pollIntervalSet && Number.isFinite(hint) && hint > 0) wait = Math.min(hint, 10 * 60_000);
      } catch (err) {
        wait = this.backoff.next();
        if (err instanceof ServerUnavailable) this.reach.failed(err, wait);
        else if (err instanceof ServerRefused) {
          // A revoked key or deleted agent: the operator has to act; say so once, keep trying slowly.
          if (err.message !== refusedWith) this.log.error({ err: err.message }, 'the control plane refuses this agent\'s work requests');
          refusedWith = err.message;
        } else this.log.error({ err: (err as Error).message }, 'work loop error');
      }
      await sleep(wait, this.signal);
    }
  }

  private async handle(item: AgentWorkItem): Promise<void> {
    if (item?.kind === 'csr') {
      // A CSR request stays listed until the server has taken the CSR; one that was just
      // answered (or refused) is left alone for a while instead of minting a key per poll.
      const now = Date.now();
      for (const [id, until] of this.csrHandled) if (until < now) this.csrHandled.delete(id);
      if (this.csrHandled.has(item.job_id)) return;
      const log = this.log.child({ job_id: item.job_id, certificate_id: item.certificate_id });
      try {
        const { keyPath, ...csr } = await makeCsrForItem(item, this.keys!);
        await this.api('POST', '/csr', csr);
        this.csrHandled.set(item.job_id, now + CSR_QUIET_MS);
        log.info({ key_path: keyPath }, 'key generated and CSR submitted');
      } catch (err) {
        if (err instanceof ServerUnavailable) throw err;
        this.csrHandled.set(item.job_id, now + CSR_QUIET_MS);
        log.error({ err: (err as Error).message }, err instanceof CsrWorkRefused ? 'cannot make a CSR for this job' : 'CSR submission failed');
      }
      return;
    }
    if (item?.kind === 'deploy') {
      // A deploy is never abandoned halfway for a shutdown: its own timeouts bound it.
      let result: DeployResultRequest | null;
      try {
        result = await runDeployItem(item, { host: this.host!, keys: this.keys!, log: this.log, verifyDelayMs: this.config.verifyDelayMs, verifyTimeoutMs: this.config.verifyTimeoutMs, verifyWindowMs: this.config.verifyWindowMs, signal: new AbortController().signal });
      } catch (err) {
        // Not a failed deploy but a fault of the agent (disk, worker pool): still an answer, not a silent lease expiry.
        this.log.error({ job_id: item.job_id, err: (err as Error).message }, 'deployment aborted by an agent error');
        result = { status: 'Failed', error: `agent error: ${(err as Error).message}`.slice(0, 2000), ...(Number.isInteger(item.attempt) ? { attempt: item.attempt } : {}) };
      }
      if (!result) {
        // Its lease ran (nearly) out while earlier items were deployed: not touched, not reported; the server leases it again.
        this.log.warn({ job_id: item.job_id, lease_expires_at: item.lease_expires_at }, 'deployment skipped: too little of its lease is left');
        return;
      }
      await this.reportResult(item, result);
      return;
    }
    this.log.warn({ kind: (item as { kind?: unknown })?.kind }, 'unknown work item kind; skipped');
  }

  /** A finished deploy is reported even across a short outage: the target already changed. */
  private async reportResult(item: DeployWorkItem, result: DeployResultRequest): Promise<void> {
    const until = Date.now() + RESULT_RETRY_MS;
    const backoff = new Backoff(BACKOFF_BASE_MS, this.config.maxBackoffMs);
    for (;;) {
      try {
        await this.api('POST', `/jobs/${encodeURIComponent(item.job_id)}/result`, result);
        return;
      } catch (err) {
        if (!(err instanceof ServerUnavailable) || Date.now() > until || this.signal.aborted) {
          this.log.error({ job_id: item.job_id, status: result.status, err: (err as Error).message }, 'could not report the deployment result');
          return;
        }
        const wait = backoff.next();
        this.reach.failed(err, wait);
        await sleep(wait, this.signal);
      }
    }
  }

  private async discoveryLoop(): Promise<void> {
    const dirs = this.config.discoveryDirs;
    if (!dirs.length) return;
    while (!this.signal.aborted) {
      let wait = this.config.discoveryIntervalMs;
      try {
        const report = await scanForCertificates(dirs);
        for (const batch of reportBatches(report)) await this.api('POST', '/discoveries', batch);
        this.log.info({ dirs, certificates: report.certificates.length, errors: report.errors?.length ?? 0 }, 'discovery scan reported');
      } catch (err) {
        if (err instanceof ServerUnavailable) {
          this.reach.failed(err);
          wait = Math.min(wait, this.config.maxBackoffMs);
        } else this.log.error({ err: (err as Error).message }, 'discovery scan failed');
      }
      await sleep(wait, this.signal);
    }
  }
}
