import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Json } from '@certctl/sdk';
import { expect } from 'vitest';
import {
  PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker, type GrantedCapabilities, type PluginFailureCode,
} from '../../kernel/src/plugins/host/contracts.js';
import { createIsolateRunner, type IsolateRunner, type IsolateRunnerOptions } from '../../kernel/src/plugins/runners/isolate/index.js';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

export const fixtureSource = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

/** Addresses no plugin may reach unless an operator declared them explicitly (loopback, link-local, metadata). */
const FORBIDDEN_ADDRESS = /^(127\.|169\.254\.|0\.|\[?::1\]?$|localhost$|metadata\.google\.internal$)/i;

/**
 * A CapabilityBroker that records every op and answers from memory. It checks
 * grants the way the real broker must (only declared hosts; never metadata or
 * link-local addresses), so tests can see both that an op reached the broker
 * with the right shape and that its refusal came back to the plugin.
 */
export class FakeBroker implements CapabilityBroker {
  readonly ops: Array<{ ctx: BrokerCallContext; op: BrokerOp; at: number }> = [];
  readonly kv = new Map<string, Json>();

  async handle(ctx: BrokerCallContext, op: BrokerOp): Promise<Json> {
    this.ops.push({ ctx, op, at: Date.now() });
    const deny = (message: string) => new PluginCallError('capability_denied', message, ctx.pluginId);
    switch (op.op) {
      case 'log':
        return null;
      case 'secrets.get':
        return op.path === 'api_key' ? 's3cret' : null;
      case 'kv.get':
        if (!ctx.grants.kv) throw deny('kv is not granted to this plugin');
        return this.kv.has(op.key) ? { value: this.kv.get(op.key) ?? null } : {};
      case 'kv.set':
        if (!ctx.grants.kv) throw deny('kv is not granted to this plugin');
        this.kv.set(op.key, op.value);
        return null;
      case 'http.fetch': {
        const request = op.request as { url?: string };
        let url: URL;
        try {
          url = new URL(String(request.url));
        } catch {
          throw new TypeError('http.fetch: invalid url');
        }
        if (FORBIDDEN_ADDRESS.test(url.hostname)) throw deny(`http.fetch: ${url.hostname} is a loopback, link-local or metadata address`);
        if (!(ctx.grants.http?.hosts ?? []).includes(url.host)) throw deny(`http.fetch: host ${url.host} is not granted to this plugin`);
        return { status: 204, headers: {}, body: '', bodyEncoding: 'utf8' };
      }
      default:
        throw deny(`${op.op} is not granted to this plugin`);
    }
  }

  opsNamed(name: BrokerOp['op']) {
    return this.ops.filter((o) => o.op.op === name);
  }
}

export const DEFAULT_GRANTS: GrantedCapabilities = { kv: true, http: { hosts: ['ca.example.test'] } };

export function runnerFor(fixture: string, opts: Partial<IsolateRunnerOptions> = {}): { runner: IsolateRunner; broker: FakeBroker } {
  const broker = (opts.broker as FakeBroker | undefined) ?? new FakeBroker();
  const pluginId = opts.pluginId ?? `hostile-${fixture.replace(/\..*$/, '')}`;
  const runner = createIsolateRunner({
    pluginId,
    source: fixtureSource(fixture),
    filename: `${pluginId}/${fixture}`,
    kind: 'issuer',
    grants: DEFAULT_GRANTS,
    memoryLimitMb: 32,
    cpuTimeoutMs: 300,
    deadlineGraceMs: 500,
    restartBackoffMs: { initial: 20, max: 200 },
    ...opts,
    broker,
  });
  return { runner, broker };
}

export function callPlugin(runner: IsolateRunner, method: string, request: Json = {}, opts: { deadlineMs?: number; config?: Record<string, Json>; instanceId?: string | null } = {}) {
  return runner.call({
    pluginId: runner.pluginId,
    instanceId: opts.instanceId === undefined ? 'iss-test' : opts.instanceId,
    method,
    request,
    config: opts.config ?? { url: 'https://ca.example.test' },
    deadline: Date.now() + (opts.deadlineMs ?? 3000),
  });
}

/** The call must fail with this PluginCallError code (and a message matching `message`, when given). */
export async function expectFailure(p: Promise<unknown>, code: PluginFailureCode, message?: RegExp): Promise<PluginCallError> {
  const err = await p.then(
    (value) => { throw new Error(`expected ${code}, but the call returned ${JSON.stringify(value)?.slice(0, 200)}`); },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PluginCallError);
  const e = err as PluginCallError;
  expect({ code: e.code, message: e.message }).toMatchObject({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  return e;
}

/** The runner still serves a normal call after an attack. */
export async function expectRecovered(runner: IsolateRunner): Promise<void> {
  await expect(callPlugin(runner, 'validateConfig')).resolves.toEqual({ ok: true });
}
