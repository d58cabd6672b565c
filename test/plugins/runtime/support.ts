import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { Json } from '@certctl/sdk';
import { loadPluginCatalog, type PluginEntry } from '../../../kernel/src/plugins/catalog.js';
import { PluginCallError, type BrokerCallContext, type BrokerOp, type CapabilityBroker, type PluginCall } from '../../../kernel/src/plugins/host/contracts.js';
import { VERSION } from '../../../kernel/src/version.js';

/** Two first-party-style plugins: a misbehaving-on-request issuer and a well-behaved notifier. */
export const RUNTIME_FIXTURES_DIR = fileURLToPath(new URL('../../fixtures/plugins-runtime/', import.meta.url));

export function runtimeEntries(): { issuer: PluginEntry; notifier: PluginEntry } {
  const catalog = loadPluginCatalog({ workspacePluginsDir: null, extraDirs: [RUNTIME_FIXTURES_DIR], kernelVersion: VERSION, log: pino({ level: 'silent' }) });
  const issuer = catalog.get('runtime-issuer');
  const notifier = catalog.get('runtime-notifier');
  if (issuer?.status !== 'enabled' || notifier?.status !== 'enabled') throw new Error(`fixture plugins not enabled: ${issuer?.reason} / ${notifier?.reason}`);
  return { issuer, notifier };
}

/** A broker that records every op, answers log, events.emit and secrets.get, and refuses the rest. */
export function recordingBroker(): CapabilityBroker & { ops: { ctx: BrokerCallContext; op: BrokerOp }[] } {
  const ops: { ctx: BrokerCallContext; op: BrokerOp }[] = [];
  return {
    ops,
    async handle(ctx, op) {
      ops.push({ ctx, op });
      if (op.op === 'log' || op.op === 'events.emit') return null;
      if (op.op === 'secrets.get') return op.path === 'api_token' ? 'tok-123' : null;
      throw new PluginCallError('capability_denied', `${op.op} is not granted in this test`, ctx.pluginId);
    },
  };
}

export function issueCall(mode: string, opts: { timeoutMs?: number; sans?: string[]; instanceId?: string | null; config?: Record<string, Json>; method?: string } = {}): PluginCall {
  return {
    pluginId: 'runtime-issuer',
    instanceId: opts.instanceId ?? null,
    method: opts.method ?? 'issue',
    request: { certificateId: 'mc-test', csrPem: 'CSR', commonName: mode, sans: opts.sans ?? ['a.example.test'], profile: { id: null, maxTtlSeconds: null, ekus: [] } },
    config: opts.config ?? { url: 'https://ca.example.test', label: 'fixture' },
    deadline: Date.now() + (opts.timeoutMs ?? 10_000),
  };
}

/** The PluginCallError a promise rejects with (fails the test if it resolves or rejects otherwise). */
export async function callError(p: Promise<unknown>): Promise<PluginCallError> {
  try {
    const v = await p;
    throw new Error(`expected a PluginCallError, got a result: ${JSON.stringify(v).slice(0, 300)}`);
  } catch (err) {
    if (!(err instanceof PluginCallError)) throw err;
    return err;
  }
}

export const reason = (result: Json): Record<string, Json> => JSON.parse((result as { reason: string }).reason) as Record<string, Json>;
