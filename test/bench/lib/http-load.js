import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { apiClient } from './https-client.js';
import { listScenarios, scenarioOp } from './list-scenarios.js';
import { measure } from './measure.js';

/**
 * The HTTPS load generator, in a worker thread so that its TLS and JSON parsing do not
 * queue on the kernel's event loop. The main thread sends one measurement at a time
 * ({ path } for a plain GET, or { scenario } for a certificate list scenario) and gets
 * the latencies back.
 */
export function startLoadWorker({ baseUrl, ca, key, now, rows }) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { baseUrl, ca, key, now, rows } });
  let pending = null;
  worker.on('message', (msg) => {
    const p = pending;
    pending = null;
    if (msg.error) p?.reject(new Error(msg.error));
    else p?.resolve(msg.result);
  });
  worker.on('error', (err) => pending?.reject(err));
  const call = (task) => new Promise((resolve, reject) => {
    pending = { resolve, reject };
    worker.postMessage(task);
  });
  return {
    /** One GET, returning the parsed body (checks before measuring). */
    get: (path) => call({ kind: 'get', path }),
    measure: (task) => call({ kind: 'measure', ...task }),
    close: () => worker.terminate(),
  };
}

if (!isMainThread && workerData?.baseUrl) {
  const client = apiClient(workerData);
  const scenarios = new Map(listScenarios(workerData.now, workerData.rows).map((s) => [s.name, s]));
  const listPath = (query) => `/api/v1/certificates?${new URLSearchParams(query)}`;
  parentPort.on('message', async (task) => {
    try {
      if (task.kind === 'get') {
        parentPort.postMessage({ result: await client.get(task.path) });
        return;
      }
      const op = task.scenario
        ? scenarioOp(scenarios.get(task.scenario), (query) => client.get(listPath(query)))
        : () => client.get(task.path);
      const { latencies, seconds, rps, p50, p99 } = await measure({ op, requests: task.requests, warmup: task.warmup, concurrency: task.concurrency });
      parentPort.postMessage({ result: { seconds, rps, p50, p99, count: latencies.length } });
    } catch (err) {
      parentPort.postMessage({ error: String(err?.stack ?? err) });
    }
  });
}
