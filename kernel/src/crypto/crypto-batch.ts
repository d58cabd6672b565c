import type { CryptoOutcome, CryptoTask } from './crypto-types.js';

interface Queued {
  task: CryptoTask;
  resolve: (outcome: CryptoOutcome<unknown>) => void;
  reject: (err: unknown) => void;
}

/** Sends tasks to the pool: one task alone, or several in one `batch` task; rejects when the pool fails them. */
export type SendTasks = (tasks: CryptoTask[]) => Promise<CryptoOutcome<unknown>[]>;

/**
 * Groups the crypto tasks submitted in one turn of the event loop. Issuances
 * move in step (a group commit or a database answer releases several at once), so
 * their CSR checks and signatures arrive together; each pool task costs a
 * message each way, a wake-up of the worker thread and Piscina's bookkeeping,
 * which for a CSR check or a signature is as much as the work. Tasks queued
 * meanwhile go out in one message per pool thread (at most `maxBatch` each), and
 * every task still gets its own outcome: one failing task fails only itself.
 */
export class CryptoTaskBatcher {
  private queue: Queued[] = [];
  private scheduled = false;

  constructor(private readonly send: SendTasks, private readonly opts: { maxBatch: number; threads: () => number }) {}

  submit(task: CryptoTask): Promise<CryptoOutcome<unknown>> {
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the current turn's I/O callbacks: everything they released is queued by then.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const items = this.queue;
    this.queue = [];
    if (!items.length) return;
    // Spread over the pool's threads, in chunks of at most maxBatch.
    const size = Math.min(this.opts.maxBatch, Math.ceil(items.length / Math.max(1, this.opts.threads())));
    for (let i = 0; i < items.length; i += size) {
      const chunk = items.slice(i, i + size);
      this.send(chunk.map((q) => q.task)).then(
        (outcomes) => chunk.forEach((q, j) => q.resolve(outcomes[j] ?? { ok: false, code: 'crashed', message: 'the crypto worker returned no outcome' })),
        (err: unknown) => chunk.forEach((q) => q.reject(err)),
      );
    }
  }
}
