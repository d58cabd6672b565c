import type { Logger } from 'pino';

/**
 * Exponential backoff with jitter: the n-th wait is between half and all of
 * min(max, base * 2^n), so many agents that lost the same server do not all
 * come back in the same second.
 */
export class Backoff {
  private n = 0;

  constructor(private readonly baseMs: number, private readonly maxMs: number, private readonly random: () => number = Math.random) {}

  get attempts(): number {
    return this.n;
  }

  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.n, 30));
    this.n++;
    return Math.round(ceiling / 2 + this.random() * (ceiling / 2));
  }

  reset(): void {
    this.n = 0;
  }
}

/** Waits, unless the signal aborts first; resolves false when aborted. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), Math.max(0, ms));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Says once that the control plane went away and once that it came back, instead
 * of a warning per failed attempt (an agent may wait out a long outage).
 */
export class ReachabilityLog {
  private awaySince: number | null = null;
  private failures = 0;

  constructor(private readonly log: Logger) {}

  get away(): boolean {
    return this.awaySince !== null;
  }

  failed(err: Error, nextAttemptMs?: number): void {
    this.failures++;
    if (this.awaySince !== null) {
      this.log.debug({ err: err.message, attempt: this.failures, retry_in_ms: nextAttemptMs }, 'control plane still unreachable');
      return;
    }
    this.awaySince = Date.now();
    this.log.warn({ err: err.message, retry_in_ms: nextAttemptMs }, 'control plane unreachable; retrying with backoff (logged once until it answers)');
  }

  succeeded(): void {
    if (this.awaySince === null) return;
    this.log.info({ failed_attempts: this.failures, away_ms: Date.now() - this.awaySince }, 'control plane reachable again');
    this.awaySince = null;
    this.failures = 0;
  }
}
