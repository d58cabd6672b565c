import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Json } from '@certctl/sdk';
import type { AuditLog } from '../../audit/audit-log.js';
import type { CaKeystore } from '../../ca/ca-keystore.js';
import { CaError } from '../../ca/ca-errors.js';
import { parseEnsureRequest, parseSignRequest } from '../../ca/ca-requests.js';
import type { ConfigCipher } from '../../secrets/config-cipher.js';
import { isIssuanceOp, PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker, type IssuanceOpName } from '../host/contracts.js';
import { deriveInstanceKey, readInstanceSecret } from './instance-secrets.js';
import { sanitizeLogFields, sanitizeLogMessage } from './log-fields.js';
import { emitPluginEvent, eventProblem, PluginEventBus } from './plugin-events.js';
import { KvRefused, PluginKv, type KvLimits } from './plugin-kv.js';
import { KV_MAX_KEYS_CEILING, kvKeyQuota } from '@certctl/sdk/policy';
import { FetchRefused, pinnedFetch, type FetchLimits, type LookupAll } from './pinned-fetch.js';

export interface KernelBrokerOptions {
  knex: Knex;
  cipher: ConfigCipher;
  audit: AuditLog;
  log: Logger;
  events?: PluginEventBus;
  fetch?: { limits?: Partial<FetchLimits>; lookup?: LookupAll };
  /** kv limits; `maxKeysPerPlugin` is the quota of `kv: true`, `maxKeysCeiling` caps what a `kv: { maxKeys }` grant gets. */
  kv?: Partial<KvLimits> & { maxKeysCeiling?: number };
  /** The CA keystore behind ctx.ca (capability `ca`); without it ca.* is refused. */
  caKeystore?: Pick<CaKeystore, 'ensure' | 'sign' | 'issuerBelongsTo'>;
  /** Log lines kept per plugin call; the rest are counted and dropped. */
  maxLogLinesPerCall?: number;
  /** The issuance service behind ctx.issuance (capability `issuance`, protocol plugins); without it issuance.* is refused. */
  issuance?: IssuanceOps;
}

/** ctx.issuance on the kernel side (kernel/src/protocols/issuance-ops.ts); the request is unchecked JSON from the plugin. */
export interface IssuanceOps {
  handle(ctx: BrokerCallContext, op: IssuanceOpName, request: Json): Promise<Json>;
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

interface CallState {
  log: Logger;
  lines: number;
  denials: number;
}

/**
 * The kernel's CapabilityBroker: the one place a plugin's context members turn
 * into effects, for every runner tier. Each op is checked against the grants of
 * the call (`ctx.grants`) before anything happens; refusals are
 * PluginCallError('capability_denied') with a message naming what was refused,
 * while ordinary I/O failures (connection refused, DNS) come back as plain
 * errors for the plugin to handle. fs and exec exist only on the agent.
 *
 * Answers, by op (the runners' context shims rely on these shapes):
 *   log -> null; secrets.get -> string | null; secrets.deriveKey -> string; http.fetch -> HttpResponse;
 *   kv.get -> { value } | null (null: absent or expired); kv.set, kv.delete -> null;
 *   kv.list -> string[]; kv.take -> { value } | null; kv.increment -> number; events.emit -> null; ca.ensure -> CaInfo; ca.sign -> CaSignResult;
 *   issuance.* -> see IssuanceOps.
 */
export class KernelCapabilityBroker implements CapabilityBroker {
  readonly events: PluginEventBus;
  readonly kv: PluginKv;
  private readonly calls = new WeakMap<BrokerCallContext, CallState>();
  private readonly maxLogLines: number;

  constructor(private readonly opts: KernelBrokerOptions) {
    this.events = opts.events ?? new PluginEventBus();
    this.kv = new PluginKv(opts.knex, opts.kv);
    this.maxLogLines = opts.maxLogLinesPerCall ?? 1000;
  }

  private state(ctx: BrokerCallContext): CallState {
    let s = this.calls.get(ctx);
    if (!s) {
      s = { log: this.opts.log.child({ plugin_id: ctx.pluginId, instance_id: ctx.instanceId }), lines: 0, denials: 0 };
      this.calls.set(ctx, s);
    }
    return s;
  }

  private deny(ctx: BrokerCallContext, op: string, message: string): PluginCallError {
    const s = this.state(ctx);
    if (++s.denials <= 20) s.log.warn({ op, reason: message }, 'plugin capability refused');
    return new PluginCallError('capability_denied', message, ctx.pluginId);
  }

  async handle(ctx: BrokerCallContext, op: BrokerOp): Promise<Json> {
    const name = op && typeof op === 'object' && typeof (op as { op?: unknown }).op === 'string' ? op.op : null;
    if (!name) throw this.deny(ctx, 'unknown', 'malformed host call');
    if (name !== 'log' && Date.now() > ctx.deadline) throw new PluginCallError('timeout', `${name}: the plugin call is past its deadline`, ctx.pluginId);
    const g = ctx.grants ?? {};
    switch (op.op) {
      case 'log':
        return this.writeLog(ctx, op);
      case 'secrets.get': {
        try {
          return (await readInstanceSecret(this.opts.knex, this.opts.cipher, ctx.pluginId, ctx.instanceId, op.path)) ?? null;
        } catch (err) {
          if (err instanceof TypeError) throw this.deny(ctx, name, err.message);
          throw err;
        }
      }
      case 'secrets.deriveKey': {
        // A bad label is refused as such; anything else that fails is an ordinary error, not a denial.
        const derived = deriveInstanceKey(this.opts.cipher, ctx.pluginId, ctx.instanceId, op.label);
        if ('problem' in derived) throw this.deny(ctx, name, derived.problem);
        return derived.key;
      }
      case 'http.fetch': {
        if (!g.http?.hosts?.length) throw this.deny(ctx, name, 'http.fetch is not granted to this plugin (capability http)');
        try {
          return (await pinnedFetch(op.request, { hosts: g.http.hosts, deadline: ctx.deadline, limits: this.opts.fetch?.limits, lookup: this.opts.fetch?.lookup })) as unknown as Json;
        } catch (err) {
          if (err instanceof FetchRefused) throw this.deny(ctx, name, err.message);
          throw err;
        }
      }
      case 'kv.get':
      case 'kv.set':
      case 'kv.delete':
      case 'kv.list':
      case 'kv.take':
      case 'kv.increment': {
        if (!g.kv) throw this.deny(ctx, name, `${name} is not granted to this plugin (capability kv)`);
        try {
          return await this.kvOp(ctx.pluginId, op, kvKeyQuota(g.kv, this.opts.kv?.maxKeysCeiling ?? KV_MAX_KEYS_CEILING, this.kv.defaultMaxKeys));
        } catch (err) {
          if (err instanceof KvRefused) throw this.deny(ctx, name, err.message);
          throw err;
        }
      }
      case 'events.emit': {
        if (g.events !== true) throw this.deny(ctx, name, 'events.emit is not granted to this plugin (capability events)');
        const problem = eventProblem(op.type, op.data);
        if (problem) throw this.deny(ctx, name, problem);
        await emitPluginEvent(this.opts.audit, this.events, { pluginId: ctx.pluginId, instanceId: ctx.instanceId, type: op.type, data: op.data, at: Date.now() });
        return null;
      }
      case 'ca.ensure':
      case 'ca.sign':
        return this.caOp(ctx, op);
      case 'fs.read':
      case 'fs.write':
      case 'fs.remove':
        throw this.deny(ctx, name, `${name}: file access is an agent-side capability; plugins running in the control plane cannot use it`);
      case 'exec.run':
        throw this.deny(ctx, name, 'exec.run: running commands is an agent-side capability; plugins running in the control plane cannot use it');
      default:
        // Every issuance.* op goes to the issuance service alike (the list: ISSUANCE_METHODS in the SDK).
        if (isIssuanceOp(op.op)) {
          if (g.issuance !== true) throw this.deny(ctx, name, `${name} is not granted to this plugin (capability issuance)`);
          if (!this.opts.issuance) throw this.deny(ctx, name, `${name}: this kernel has no issuance service attached`);
          return this.opts.issuance.handle(ctx, op.op, op.request);
        }
        throw this.deny(ctx, String(name).slice(0, 40), `unknown host call ${JSON.stringify(String(name).slice(0, 40))}`);
    }
  }

  /**
   * ctx.ca: only with the `ca` grant, only for a call on an issuer instance of the
   * calling plugin, which gets that instance's own CA. The request is rebuilt from
   * checked fields first. Keystore refusals reach the plugin as errors with a code
   * (csr_invalid, ca_not_configured, ...); anything unexpected is logged here and
   * reaches the plugin only as `unavailable`, never with internal detail.
   */
  private async caOp(ctx: BrokerCallContext, op: Extract<BrokerOp, { op: 'ca.ensure' | 'ca.sign' }>): Promise<Json> {
    const name = op.op;
    if (ctx.grants?.ca !== true) throw this.deny(ctx, name, `${name} is not granted to this plugin (capability ca)`);
    const keystore = this.opts.caKeystore;
    if (!keystore) throw this.deny(ctx, name, `${name}: this kernel has no CA keystore attached`);
    if (!ctx.instanceId) throw this.deny(ctx, name, `${name} needs a call on an issuer instance (this call has none)`);
    if (!(await keystore.issuerBelongsTo(ctx.instanceId, ctx.pluginId))) throw this.deny(ctx, name, `${name}: ${ctx.instanceId} is not an issuer instance of plugin ${ctx.pluginId}`);
    const parsed = name === 'ca.ensure' ? parseEnsureRequest(op.request) : parseSignRequest(op.request);
    if (!parsed.ok) {
      // Refused before any use; an error with a code (not a capability refusal) so the issuer can report it as denied.
      this.state(ctx).log.warn({ op: name, reason: parsed.problem }, 'CA request refused');
      throw new CaError('bad_request', parsed.problem);
    }
    try {
      const result = name === 'ca.ensure'
        ? await keystore.ensure(ctx.instanceId, parsed.value as Parameters<CaKeystore['ensure']>[1])
        : await keystore.sign(ctx.instanceId, parsed.value as Parameters<CaKeystore['sign']>[1]);
      return result as unknown as Json;
    } catch (err) {
      if (err instanceof CaError) throw err;
      this.state(ctx).log.error({ op: name, err }, 'CA keystore failure');
      throw new CaError('unavailable', `${name} failed on the kernel side; see the kernel log`);
    }
  }

  private writeLog(ctx: BrokerCallContext, op: Extract<BrokerOp, { op: 'log' }>): null {
    const s = this.state(ctx);
    s.lines++;
    if (s.lines > this.maxLogLines) {
      if (s.lines === this.maxLogLines + 1) s.log.warn(`plugin log limit reached (${this.maxLogLines} lines in one call); further lines dropped`);
      return null;
    }
    const level = LEVELS.has(op.level) ? op.level : 'info';
    const fields = op.fields === undefined ? {} : { fields: sanitizeLogFields(op.fields) };
    s.log[level](fields, sanitizeLogMessage(op.message));
    return null;
  }

  /** `maxKeys`: the plugin's key quota (its grant, `kv: true` or `kv: { maxKeys }`, within the kernel's ceiling). */
  private async kvOp(pluginId: string, op: Extract<BrokerOp, { op: `kv.${string}` }>, maxKeys: number): Promise<Json> {
    switch (op.op) {
      case 'kv.get':
      case 'kv.take': {
        const value = op.op === 'kv.get' ? await this.kv.get(pluginId, op.key) : await this.kv.take(pluginId, op.key);
        return value === undefined ? null : { value };
      }
      case 'kv.set':
        await this.kv.set(pluginId, op.key, op.value, op.ttlSeconds, maxKeys);
        return null;
      case 'kv.increment':
        return await this.kv.increment(pluginId, op.key, op.by, op.ttlSeconds, maxKeys);
      case 'kv.delete':
        await this.kv.delete(pluginId, op.key);
        return null;
      case 'kv.list':
        return await this.kv.list(pluginId, op.prefix);
    }
  }
}
