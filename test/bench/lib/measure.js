import { performance } from 'node:perf_hooks';

/** Nearest-rank percentile of a sorted copy; p in 0..100. */
export function percentile(samples, p) {
  if (!samples.length) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export const round = (n, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** One JSON line per figure on stdout; everything else the bench says goes to stderr. */
export function emit(figure) {
  process.stdout.write(JSON.stringify({ ...figure, value: round(figure.value) }) + '\n');
}

export const note = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/**
 * Runs `op(worker, i)` `requests` times after `warmup` unmeasured calls, with
 * `concurrency` workers pulling from one shared counter. Returns per-call
 * latencies (ms) and the wall-clock rate of the measured part.
 */
export async function measure({ op, requests, warmup = 0, concurrency = 1 }) {
  const run = async (total, record) => {
    let next = 0;
    const latencies = [];
    const worker = async (w) => {
      for (let i = next++; i < total; i = next++) {
        const t0 = performance.now();
        await op(w, i);
        if (record) latencies.push(performance.now() - t0);
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
    return { latencies, seconds: (performance.now() - t0) / 1000 };
  };
  if (warmup) await run(warmup, false);
  const { latencies, seconds } = await run(requests, true);
  return { latencies, seconds, rps: requests / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/**
 * Steady-state rate of a closed loop: `concurrency` workers keep calling `op(worker, i)`
 * from the first warm-up call to the end, never draining between warm-up and measurement.
 * The window opens when the `warmup`-th call completes and closes when `requests` more have
 * completed; calls go on being issued until it closes (at most `concurrency` more than
 * warmup + requests in all), so neither the pipeline filling up at the start nor its
 * draining at the end falls inside it. (measure() above drains after the warm-up and times
 * the refill and the final drain too: with a pipeline hundreds of calls deep and a window
 * of a second or two, that understates the rate by 5-15%.)
 * Latencies: the calls started while the window was open. `onOpen`/`onClose` run at the
 * window's edges (CPU counters). Returns what measure() does.
 */
export async function measureSteady({ op, requests, warmup = 0, concurrency = 1, onOpen = () => {}, onClose = () => {} }) {
  if (!(requests >= 1)) throw new Error('measureSteady needs at least one measured request');
  let next = 0;
  let done = 0;
  let opened = null;
  let closed = null;
  let failed = false;
  const latencies = [];
  // The counters are read just outside the window, so reading them is not inside it.
  const open = () => {
    onOpen();
    opened = performance.now();
  };
  if (warmup === 0) open();
  const worker = async (w) => {
    while (closed === null && !failed) {
      const i = next++;
      const t0 = performance.now();
      const inWindow = opened !== null;
      try {
        await op(w, i);
      } catch (err) {
        // One failure ends the loop for every worker: the run is void.
        failed = true;
        throw err;
      }
      if (inWindow) latencies.push(performance.now() - t0);
      done += 1;
      if (done === warmup && opened === null) open();
      else if (done === warmup + requests && closed === null) {
        closed = performance.now();
        onClose();
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const seconds = (closed - opened) / 1000;
  return { latencies, seconds, rps: requests / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}
