/**
 * The Piscina worker script for first-party plugins (runs from kernel/dist). One
 * task is one plugin method call: load the plugin's worker entry (once per
 * thread), build a context wired to the thread's broker port, call the method and
 * return the outcome as data. Everything the plugin throws is caught here; only
 * a dead thread (exit, uncaught async error, out of memory) reaches Piscina as a
 * rejection, which the runner reports as `crashed` or `memory_limit`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';
import type { Plugin } from '@certctl/sdk';
import { describeThrown, toJsonText } from '../../host/json-value.js';
import type { PluginTask, PluginTaskOutcome } from './protocol.js';
import { createWorkerContext, hostRefusalOf, type WorkerCallContext } from './worker-context.js';

const modules = new Map<string, Promise<Plugin>>();

function loadPlugin(entryUrl: string, kind: string): Promise<Plugin> {
  let p = modules.get(entryUrl);
  if (!p) {
    p = import(entryUrl).then((mod: { default?: unknown }) => {
      const plugin = mod.default as Plugin | undefined;
      if (!plugin || typeof plugin !== 'object') throw new Error('the entry module has no default export (use `export default definePlugin({...})`)');
      if (plugin.kind !== kind) throw new Error(`the entry exports a plugin of kind ${JSON.stringify(plugin.kind)}, but the manifest says ${kind}`);
      return plugin;
    });
    // A failed load is retried on the next call (the file may have been rebuilt).
    p.catch(() => modules.delete(entryUrl));
    modules.set(entryUrl, p);
  }
  return p;
}

// Console output from a plugin becomes structured log lines of the call it was
// written in (a protocol plugin's thread runs several calls at once); outside
// any call it is dropped rather than written to the kernel's stdout.
const currentCall = new AsyncLocalStorage<WorkerCallContext>();
const consoleTo = (level: 'debug' | 'info' | 'warn' | 'error') => (...args: unknown[]) => {
  const current = currentCall.getStore();
  if (!current) return;
  let line: string;
  try {
    line = format(...args);
  } catch {
    line = '[unprintable console output]';
  }
  current.log(level, line.length > 4000 ? `${line.slice(0, 4000)}...` : line, { console: true });
};
console.log = consoleTo('info');
console.info = consoleTo('info');
console.debug = consoleTo('debug');
console.trace = consoleTo('debug');
console.warn = consoleTo('warn');
console.error = consoleTo('error');

const TIMED_OUT = Symbol('timed out');

const fail = (code: Extract<PluginTaskOutcome, { ok: false }>['code'], message: string): PluginTaskOutcome => ({ ok: false, code, message });

export default async function runPluginTask(task: PluginTask): Promise<PluginTaskOutcome> {
  const call = createWorkerContext({ token: task.token, pluginId: task.pluginId, instanceId: task.instanceId, config: task.config, deadline: task.deadline });
  try {
    const outcome = await currentCall.run(call, () => runMethod(task, call));
    // Lines already posted travel without replies: make sure the kernel has them before the
    // call ends (no message when a later reply confirmed them). The rest ride on the outcome.
    await call.flush();
    const logs = call.takeLogs();
    return logs.length ? { ...outcome, logs } : outcome;
  } finally {
    call.dispose();
  }
}

async function runMethod(task: PluginTask, call: WorkerCallContext): Promise<PluginTaskOutcome> {
  let plugin: Plugin;
  try {
    plugin = await loadPlugin(task.entryUrl, task.kind);
  } catch (err) {
    return fail('unavailable', `the plugin's worker entry could not be loaded: ${describeThrown(err)}`);
  }
  // Own members (or a class's methods), never what every object inherits (toString, constructor).
  const method = task.method in plugin && !(task.method in Object.prototype) ? (plugin as unknown as Record<string, unknown>)[task.method] : undefined;
  if (typeof method !== 'function') return fail('not_supported', `the plugin does not implement ${task.method}`);

  // A plugin that never settles is timed out here, which keeps the thread; a
  // busy one is stopped by the kernel terminating the thread.
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<typeof TIMED_OUT>((resolve) => { timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, task.deadline - Date.now())); });
  let value: unknown;
  try {
    const result = await Promise.race([Promise.resolve().then(() => method.call(plugin, task.request, call.ctx)), timedOut]);
    if (result === TIMED_OUT) return fail('timeout', `${task.method} did not finish by its deadline`);
    value = result;
  } catch (err) {
    const refusal = hostRefusalOf(err);
    if (refusal) return fail(refusal.code as never, refusal.message);
    return fail('plugin_error', `${task.method} threw ${describeThrown(err)}`);
  } finally {
    clearTimeout(timer);
  }
  const text = toJsonText(value, task.maxResultBytes);
  if (!text.ok) return fail('bad_result', text.reason);
  return { ok: true, json: text.text };
}
