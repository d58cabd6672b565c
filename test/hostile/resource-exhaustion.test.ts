import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IsolateRunner } from '../../kernel/src/plugins/runners/isolate/index.js';
import { callPlugin, expectFailure, expectRecovered, FakeBroker, runnerFor } from './support.js';

/** Wall time of a promise, whatever it settles to. */
async function timed<T>(p: Promise<T>): Promise<number> {
  const start = Date.now();
  await p.catch(() => undefined);
  return Date.now() - start;
}

// The sandbox does not touch a database: run once, not per database project.
describe('isolate sandbox: CPU', () => {
  let runner: IsolateRunner;
  beforeAll(() => { ({ runner } = runnerFor('loop-forever.js', { cpuTimeoutMs: 250 })); });
  afterAll(() => runner.close());

  it('stops an infinite loop with cpu_limit, well before the deadline', async () => {
    const ms = await timed(expectFailure(callPlugin(runner, 'issue', {}, { deadlineMs: 5000 }), 'cpu_limit', /issue ran for more than 250 ms without yielding/));
    expect(ms).toBeLessThan(2000);
    await expectRecovered(runner);
  });

  it('stops loops in microtasks, timer callbacks and host-reply continuations', async () => {
    await expectFailure(callPlugin(runner, 'spinInMicrotasks'), 'cpu_limit');
    await expectFailure(callPlugin(runner, 'spinInTimer'), 'cpu_limit');
    await expectFailure(callPlugin(runner, 'spinAfterHostReply'), 'cpu_limit');
    await expectRecovered(runner);
  });

  it('stops a thread blocked in Atomics.wait', async () => {
    await expectFailure(callPlugin(runner, 'blockOnAtomics'), 'cpu_limit');
    await expectRecovered(runner);
  });

  it('reports a loop that outlives the deadline as timeout', async () => {
    await expectFailure(callPlugin(runner, 'issue', {}, { deadlineMs: 150 }), 'timeout', /did not finish by its deadline/);
    await expectRecovered(runner);
  });

  it('keeps other calls answering while one spins', async () => {
    const spinning = expectFailure(callPlugin(runner, 'issue'), 'cpu_limit');
    const normal = await Promise.all([callPlugin(runner, 'validateConfig'), callPlugin(runner, 'validateConfig')]);
    expect(normal).toEqual([{ ok: true }, { ok: true }]);
    await spinning;
  });

  it('fails every call of an entry script that spins while loading, without wedging the runner', async () => {
    const { runner: r } = runnerFor('loop-at-load.js', { kind: null });
    try {
      await expectFailure(callPlugin(r, 'issue'), 'cpu_limit');
      await expectFailure(callPlugin(r, 'issue'), 'cpu_limit');
    } finally {
      await r.close();
    }
  });
});

describe('isolate sandbox: memory', () => {
  let runner: IsolateRunner;
  beforeAll(() => { ({ runner } = runnerFor('allocate.js', { memoryLimitMb: 16, cpuTimeoutMs: 5000 })); });
  afterAll(() => runner.close());

  it('disposes an isolate that allocates without bound: memory_limit, then a fresh isolate', async () => {
    await expectFailure(callPlugin(runner, 'issue', {}, { deadlineMs: 10_000 }), 'memory_limit', /exceeded its 16 MB memory limit/);
    await expectRecovered(runner);
    await expectFailure(callPlugin(runner, 'allocateStrings', {}, { deadlineMs: 10_000 }), 'memory_limit');
    await expectRecovered(runner);
  });

  it('refuses large ArrayBuffers beyond the limit', async () => {
    // Off-heap allocations are counted too: V8 refuses the buffer, which the plugin sees as a RangeError.
    await expectFailure(callPlugin(runner, 'allocateBuffers', {}, { deadlineMs: 10_000 }), 'plugin_error', /RangeError: Array buffer allocation failed/);
    await expectRecovered(runner);
  });
});

describe('isolate sandbox: calls that never finish', () => {
  let runner: IsolateRunner;
  beforeAll(() => { ({ runner } = runnerFor('never-resolves.js')); });
  afterAll(() => runner.close());

  it('fails a promise that never resolves with timeout at the deadline', async () => {
    const ms = await timed(expectFailure(callPlugin(runner, 'issue', {}, { deadlineMs: 300 }), 'timeout', /issue did not finish by its deadline/));
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(1500);
    await expectRecovered(runner);
  });

  it('times out many hanging calls at once and still serves', async () => {
    const hanging = Array.from({ length: 20 }, () => expectFailure(callPlugin(runner, 'issue', {}, { deadlineMs: 300 }), 'timeout'));
    await expectRecovered(runner);
    await Promise.all(hanging);
  });

  it('fails at once when the deadline has already passed', async () => {
    await expectFailure(callPlugin(runner, 'issue', {}, { deadlineMs: -1 }), 'timeout');
  });
});

describe('isolate sandbox: timers', () => {
  let runner: IsolateRunner;
  let broker: FakeBroker;
  beforeAll(() => { ({ runner, broker } = runnerFor('timer-spam.js', { maxPendingTimers: 50, maxTimersPerCall: 200 })); });
  afterAll(() => runner.close());

  it('caps pending setTimeout calls', async () => {
    await expectFailure(callPlugin(runner, 'spamTimeouts'), 'plugin_error', /RangeError: setTimeout: 50 timers are already pending in this call/);
    await expectRecovered(runner);
  });

  it('has no setInterval', async () => {
    await expectFailure(callPlugin(runner, 'spamInterval'), 'plugin_error', /ReferenceError: setInterval is not defined/);
  });

  it('stops a plugin that swallows the refusals and keeps trying', async () => {
    await expectFailure(callPlugin(runner, 'spamAndSwallow'), 'cpu_limit');
    await expectRecovered(runner);
  });

  it('caps the timers one call may schedule in total', async () => {
    await expectFailure(callPlugin(runner, 'endlessChain'), 'plugin_error', /a setTimeout callback threw RangeError: setTimeout: this call already scheduled 200 timers/);
    await expectRecovered(runner);
  });

  it('does not evaluate code strings', async () => {
    await expectFailure(callPlugin(runner, 'stringTimer'), 'plugin_error', /setTimeout needs a function/);
  });

  it('clears a call\'s timers when it ends: a late timer reaches nothing', async () => {
    await expect(callPlugin(runner, 'lateTimer')).resolves.toBe('returned');
    await new Promise((r) => setTimeout(r, 150));
    expect(broker.opsNamed('kv.set')).toEqual([]);
  });
});

describe('isolate sandbox: flooding the host', () => {
  let runner: IsolateRunner;
  let broker: FakeBroker;
  beforeAll(() => { ({ runner, broker } = runnerFor('flood-host.js', { maxOpsPerCall: 1000 })); });
  afterAll(() => runner.close());

  it('drops log lines past the per-call op budget', async () => {
    await expect(callPlugin(runner, 'logFlood')).resolves.toBe('logged');
    expect(broker.opsNamed('log')).toHaveLength(1000);
    // One broker context per call: the kernel broker keys its per-call log and refusal caps on it.
    expect(new Set(broker.opsNamed('log').map((o) => o.ctx)).size).toBe(1);
  });

  it('refuses awaited host operations past the per-call op budget', async () => {
    broker.ops.length = 0;
    await expectFailure(callPlugin(runner, 'opFlood'), 'plugin_error', /RangeError: kv\.get: more than 1000 host operations in one call/);
    expect(broker.ops.length).toBeLessThanOrEqual(1000);
    await expectRecovered(runner);
  });

  it('refuses a host operation over the size cap before it leaves the isolate', async () => {
    broker.ops.length = 0;
    await expectFailure(callPlugin(runner, 'bigOp'), 'plugin_error', /RangeError: kv\.set: arguments are larger than 2097152 bytes/);
    expect(broker.ops).toEqual([]);
  });
});
