import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Json } from '@certctl/sdk';
import { alwaysRefusedPath, pathArgCheck, pathWithin as within, type PathAccess } from '@certctl/sdk/policy';
import {
  checkExec, ExecFailed, ExecRefused, FetchRefused, FsRefused, PluginCallError, pinnedFetch, readDeclaredFile, removeDeclaredFile, resolveDeclaredPath,
  runDeclaredCommand, sanitizeLogFields, sanitizeLogMessage, writeDeclaredFile,
  type BrokerCallContext, type BrokerOp, type CapabilityBroker,
} from './kernel-parts.js';
import type { CallGrants } from './grants.js';
import { LocalKvRefused, type LocalKv } from './local-kv.js';

export interface AgentBrokerOptions {
  grants: CallGrants;
  /** The target instance's secret fields (dot path -> value), split from its config. */
  secrets: Record<string, string>;
  kv: LocalKv;
  log: Logger;
  /** Real paths of the agent's key and state directories: refused to every plugin whatever its grants say. */
  protectedDirs: string[];
  /**
   * Real paths of CERTCTL_AGENT_ALLOWED_PATHS (or its default). Grants were already cut to it;
   * checking the resolved path again means a symlink inside an allowed folder cannot lead out.
   */
  allowedPaths: string[];
  maxLogLines?: number;
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

/**
 * The agent's CapabilityBroker, one per target-plugin session (a deploy and its
 * rollback): the grants are those of this call (see grants.ts), not the plugin's
 * in general. fs, exec and http.fetch go through the kernel's checked helpers;
 * kv is local to the agent; the CA is never reachable from here.
 */
export class AgentCapabilityBroker implements CapabilityBroker {
  private lines = 0;
  private denials = 0;

  constructor(private readonly opts: AgentBrokerOptions) {}

  private deny(ctx: BrokerCallContext, op: string, message: string): PluginCallError {
    if (++this.denials <= 20) this.opts.log.warn({ plugin_id: ctx.pluginId, instance_id: ctx.instanceId, op, reason: message }, 'plugin capability refused');
    return new PluginCallError('capability_denied', message, ctx.pluginId);
  }

  /** Resolves the path under the grants, then refuses the agent's own directories (a broad grant such as /var must not reach the keys). */
  private async checkPath(ctx: BrokerCallContext, op: string, requested: unknown, grants: string[], forWrite: boolean): Promise<string> {
    let real: string;
    try {
      real = await resolveDeclaredPath(requested, grants, { forWrite });
    } catch (err) {
      if (err instanceof FsRefused) throw this.deny(ctx, op, err.message);
      throw err;
    }
    // The deploy's own key file is the one exception to both rules below (read only).
    if (!forWrite && this.opts.grants.fsRead.includes(real)) return real;
    if (this.opts.protectedDirs.some((d) => within(d, real))) throw this.deny(ctx, op, `${real} is in the agent's own key or state directory`);
    const never = alwaysRefusedPath(real);
    if (never) throw this.deny(ctx, op, never);
    if (!this.opts.allowedPaths.some((a) => within(a, real))) throw this.deny(ctx, op, `${real} is outside the agent's allowed paths (CERTCTL_AGENT_ALLOWED_PATHS)`);
    return real;
  }

  async handle(ctx: BrokerCallContext, op: BrokerOp): Promise<Json> {
    const name = op && typeof op === 'object' && typeof (op as { op?: unknown }).op === 'string' ? op.op : null;
    if (!name) throw this.deny(ctx, 'unknown', 'malformed host call');
    if (name !== 'log' && Date.now() > ctx.deadline) throw new PluginCallError('timeout', `${name}: the plugin call is past its deadline`, ctx.pluginId);
    const g = this.opts.grants;
    switch (op.op) {
      case 'log': {
        if (++this.lines > (this.opts.maxLogLines ?? 1000)) return null;
        const level = LEVELS.has(op.level) ? op.level : 'info';
        this.opts.log[level]({ plugin_id: ctx.pluginId, instance_id: ctx.instanceId, ...(op.fields ? { fields: sanitizeLogFields(op.fields) } : {}) }, sanitizeLogMessage(op.message));
        return null;
      }
      case 'secrets.get':
        if (typeof op.path !== 'string') throw this.deny(ctx, name, 'secrets.get needs a dot path');
        return Object.hasOwn(this.opts.secrets, op.path) ? this.opts.secrets[op.path] : null;
      case 'fs.read': {
        const all = [...g.fsWrite, ...g.fsRead];
        if (!all.length) throw this.deny(ctx, name, 'fs.read: no file paths are granted for this call');
        const real = await this.checkPath(ctx, name, op.path, all, false);
        try {
          return await readDeclaredFile(real, all);
        } catch (err) {
          if (err instanceof FsRefused) throw this.deny(ctx, name, err.message);
          throw err;
        }
      }
      case 'fs.write':
      case 'fs.remove': {
        if (!g.fsWrite.length) throw this.deny(ctx, name, `${name}: no writable paths are granted for this call`);
        const real = await this.checkPath(ctx, name, op.path, g.fsWrite, true);
        try {
          if (op.op === 'fs.remove') await removeDeclaredFile(real, g.fsWrite);
          else await writeDeclaredFile(real, op.data, g.fsWrite, op.mode === undefined ? {} : { mode: op.mode });
          return null;
        } catch (err) {
          if (err instanceof FsRefused) throw this.deny(ctx, name, err.message);
          throw err;
        }
      }
      case 'exec.run': {
        if (!g.exec.length) throw this.deny(ctx, name, 'exec.run: no commands are granted for this call');
        // `{ "path": ... }` arguments lie (as written) inside this call's granted paths; their
        // real paths are checked like fs.* paths before the command starts, so a symlink cannot lead out.
        const lexical = pathArgCheck({ write: g.fsWrite, read: g.fsRead });
        const pathArgs = new Map<string, PathAccess>();
        const pathOk = (arg: string, access: PathAccess) => {
          if (!lexical(arg, access)) return false;
          if (pathArgs.get(arg) !== 'write') pathArgs.set(arg, access);
          return true;
        };
        try {
          checkExec(op.command, op.args, g.exec, pathOk);
        } catch (err) {
          if (err instanceof ExecRefused) throw this.deny(ctx, name, err.message);
          throw err;
        }
        for (const [arg, access] of pathArgs) {
          try {
            await this.checkPath(ctx, name, arg, access === 'write' ? g.fsWrite : [...g.fsWrite, ...g.fsRead], access === 'write');
          } catch (err) {
            // A missing file to read: its folder was checked; the command reports the absence itself.
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          }
        }
        try {
          const timeoutMs = Math.min(op.timeoutMs ?? 30_000, Math.max(1, ctx.deadline - Date.now()));
          return (await runDeclaredCommand(op.command, op.args, g.exec, { timeoutMs, pathOk: lexical, ...(op.input !== undefined ? { input: op.input } : {}) })) as unknown as Json;
        } catch (err) {
          if (err instanceof ExecRefused) throw this.deny(ctx, name, err.message);
          if (err instanceof ExecFailed) throw Object.assign(new Error(err.message), { code: err.code });
          throw err;
        }
      }
      case 'http.fetch': {
        if (!g.httpHosts.length) throw this.deny(ctx, name, 'http.fetch: no hosts are granted for this call');
        try {
          return (await pinnedFetch(op.request, { hosts: g.httpHosts, deadline: ctx.deadline })) as unknown as Json;
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
          return await this.kvOp(ctx.pluginId, op);
        } catch (err) {
          if (err instanceof LocalKvRefused) throw this.deny(ctx, name, err.message);
          throw err;
        }
      }
      case 'events.emit':
        throw this.deny(ctx, name, 'events.emit: there is no event stream on the agent');
      case 'ca.ensure':
      case 'ca.sign':
        throw this.deny(ctx, name, `${name}: CA operations exist only in the control plane`);
      default:
        throw this.deny(ctx, String(name).slice(0, 40), `unknown host call ${JSON.stringify(String(name).slice(0, 40))}`);
    }
  }

  private async kvOp(pluginId: string, op: Extract<BrokerOp, { op: `kv.${string}` }>): Promise<Json> {
    const kv = this.opts.kv;
    switch (op.op) {
      case 'kv.get': {
        const value = await kv.get(pluginId, op.key);
        return value === undefined ? null : { value };
      }
      case 'kv.set':
        await kv.set(pluginId, op.key, op.value, op.ttlSeconds);
        return null;
      case 'kv.delete':
        await kv.delete(pluginId, op.key);
        return null;
      case 'kv.list':
        return await kv.list(pluginId, op.prefix);
      case 'kv.take': {
        const value = await kv.take(pluginId, op.key);
        return value === undefined ? null : { value };
      }
      case 'kv.increment':
        return await kv.increment(pluginId, op.key, op.by, op.ttlSeconds);
    }
  }
}

/** Real paths of directories that may not exist yet (then the path as given). */
export async function realDirs(dirs: string[]): Promise<string[]> {
  return Promise.all(dirs.map(async (d) => fs.realpath(d).catch(() => path.resolve(d))));
}
