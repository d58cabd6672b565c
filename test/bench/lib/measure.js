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
