// `npm run bench -- plugins [--calls N] [--warmup N] [--concurrency N] [--cold N]`
//
// What it costs to run plugin code behind the runners. One trivial issuer (returns a fixed
// `issued` result, touches no capability) is called:
//   - directly in this process (the floor: a plain async function call),
//   - through the WorkerRunner (Piscina pool, first-party tier),
//   - through the IsolateRunner (isolated-vm isolate in a sandbox child, third-party tier),
//   - through the PluginHost with the worker runner (adds method check + result validation).
// Per runner: sequential call latency p50/p99 (us), throughput at --concurrency, and cold start
// (first call on a fresh runner: thread or process start plus loading the plugin).
// One JSON line per figure on stdout; progress on stderr.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadPluginCatalog } from '../../kernel/dist/plugins/catalog.js';
import { PluginHost } from '../../kernel/dist/plugins/host/plugin-host.js';
import { WorkerRunner } from '../../kernel/dist/plugins/runners/worker/worker-runner.js';
import { VERSION } from '../../kernel/dist/version.js';
import { emit, measure, note, percentile } from './lib/measure.js';

const ISSUER_JS = `
const result = { status: 'issued', certificatePem: '-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n', chainPem: [] };
const plugin = {
  kind: 'issuer',
  async issue(request) {
    return { ...result, chainPem: request.sans.length ? [] : [] };
  },
};
`;

function writePlugin(dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'bench-trivial-issuer', version: '1.0.0', type: 'module',
    certctl: {
      id: 'bench-trivial-issuer', kind: 'issuer', apiVersion: 'certctl.plugin/v1', engines: { certctl: '*' },
      runtimes: ['worker', 'isolate'], entry: { worker: 'worker.js', isolate: 'isolate.cjs' },
      configSchema: { type: 'object', additionalProperties: false, properties: {} },
    },
  }, null, 2));
  fs.writeFileSync(path.join(dir, 'worker.js'), `${ISSUER_JS}\nexport default plugin;\n`);
  fs.writeFileSync(path.join(dir, 'isolate.cjs'), `${ISSUER_JS}\nmodule.exports = plugin;\n`);
}

const request = { certificateId: 'mc-bench', csrPem: 'CSR', commonName: 'bench.example.test', sans: ['bench.example.test'], profile: { id: null, maxTtlSeconds: null, ekus: [] } };
const broker = { async handle() { return null; } };

async function isolateFactory() {
  try {
    const mod = await import('../../kernel/dist/plugins/runners/isolate/index.js');
    return typeof mod.createIsolateRunner === 'function' ? mod.createIsolateRunner : null;
  } catch {
    return null;
  }
}

async function benchRunner(name, makeCall, { calls, warmup, concurrency }) {
  const seq = await measure({ op: () => makeCall(), requests: calls, warmup });
  emit({ name: `plugins.${name}.call_p50`, value: seq.p50 * 1000, unit: 'us' });
  emit({ name: `plugins.${name}.call_p99`, value: seq.p99 * 1000, unit: 'us' });
  const par = await measure({ op: () => makeCall(), requests: calls, warmup: Math.min(warmup, 50), concurrency });
  emit({ name: `plugins.${name}.throughput`, value: par.rps, unit: 'calls/s', concurrency });
  note(`${name}: p50 ${seq.p50.toFixed(3)} ms, p99 ${seq.p99.toFixed(3)} ms, ${par.rps.toFixed(0)} calls/s at concurrency ${concurrency}`);
  return seq;
}

/** First call on `cold` fresh runners; the median is the figure. */
async function coldStart(name, makeRunner, callOn, cold) {
  const samples = [];
  for (let i = 0; i < cold; i++) {
    const runner = await makeRunner();
    const t0 = performance.now();
    await callOn(runner);
    samples.push(performance.now() - t0);
    await runner.close();
  }
  const value = percentile(samples, 50);
  emit({ name: `plugins.${name}.cold_start`, value, unit: 'ms' });
  note(`${name}: cold start median ${value.toFixed(1)} ms over ${cold}`);
}

export async function run(args) {
  const { values } = parseArgs({ args, options: { calls: { type: 'string', default: '5000' }, warmup: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '8' }, cold: { type: 'string', default: '5' } } });
  const opts = { calls: Number(values.calls), warmup: Number(values.warmup), concurrency: Number(values.concurrency) };
  const cold = Number(values.cold);
  const log = pino({ level: 'silent' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-bench-plugins-'));
  const pluginDir = path.join(dir, 'bench-trivial-issuer');
  writePlugin(pluginDir);
  const catalog = loadPluginCatalog({ workspacePluginsDir: null, extraDirs: [pluginDir], kernelVersion: VERSION, log });
  const entry = catalog.get('bench-trivial-issuer');
  if (entry?.status !== 'enabled') throw new Error(`bench plugin disabled: ${entry?.reason}`);
  emit({ name: 'host.loadavg1', value: os.loadavg()[0], unit: 'load', cpus: os.cpus().length, node: process.version });

  try {
    // Floor: the same function called in this process.
    const direct = (await import(pathToFileURL(path.join(pluginDir, 'worker.js')).href)).default;
    const ctx = {};
    const directSeq = await measure({ op: () => direct.issue(structuredClone(request), ctx), requests: opts.calls * 10, warmup: opts.warmup });
    emit({ name: 'plugins.direct.call_p50', value: directSeq.p50 * 1000, unit: 'us' });
    emit({ name: 'plugins.direct.call_p99', value: directSeq.p99 * 1000, unit: 'us' });
    note(`direct: p50 ${(directSeq.p50 * 1000).toFixed(2)} us`);

    const workerCall = (runner) => runner.call({ pluginId: entry.id, instanceId: null, method: 'issue', request, config: {}, deadline: Date.now() + 30_000 });
    const worker = new WorkerRunner(entry, {}, broker, { log, maxThreads: 2, minThreads: 0 });
    const w = await benchRunner('worker', () => workerCall(worker), opts);
    emit({ name: 'plugins.worker.overhead_p50', value: (w.p50 - directSeq.p50) * 1000, unit: 'us' });
    await worker.close();
    await coldStart('worker', () => new WorkerRunner(entry, {}, broker, { log }), workerCall, cold);

    const host = new PluginHost({ catalog, knex: null, cipher: null, log, broker });
    await benchRunner('host_worker', () => host.call(entry.id, null, 'issue', request), opts);
    await host.close();

    const createIsolateRunner = await isolateFactory();
    if (!createIsolateRunner) {
      note('isolate runner not built (kernel/dist/plugins/runners/isolate): isolate figures skipped');
    } else {
      const source = fs.readFileSync(path.join(pluginDir, 'isolate.cjs'), 'utf8');
      const makeIsolate = () => createIsolateRunner({ pluginId: entry.id, source, kind: 'issuer', grants: {}, broker, log });
      const isolate = makeIsolate();
      const iso = await benchRunner('isolate', () => workerCall(isolate), opts);
      emit({ name: 'plugins.isolate.overhead_p50', value: (iso.p50 - directSeq.p50) * 1000, unit: 'us' });
      await isolate.close();
      await coldStart('isolate', makeIsolate, workerCall, cold);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
