import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { IsolateRunner } from '../../kernel/src/plugins/runners/isolate/index.js';
import { callPlugin, expectFailure, FakeBroker, FIXTURES, runnerFor } from './support.js';

/**
 * The kernel side of the isolate runner against a sandbox process that plugin
 * code has taken over (fixtures/rogue-sandbox.mjs): whatever it sends, the kernel
 * keeps its own deadlines, refuses ops for ended calls, re-checks results and
 * replaces the process when it hangs or dies.
 */
const ROGUE = path.join(FIXTURES, 'rogue-sandbox.mjs');

describe('isolate runner: a compromised sandbox process', () => {
  let runner: IsolateRunner | undefined;
  afterEach(async () => { await runner?.close(); runner = undefined; });
  const rogue = (opts: Parameters<typeof runnerFor>[1] = {}) => {
    const made = runnerFor('well-behaved.js', { sandboxEntry: ROGUE, kind: null, deadlineGraceMs: 200, ...opts });
    runner = made.runner;
    return made;
  };

  it('starts the child with an empty environment', async () => {
    const { runner: r } = rogue();
    const result = await callPlugin(r, 'ok') as { pid: number; env: string[] };
    expect(result.pid).not.toBe(process.pid);
    expect(result.env).toEqual([]);
  });

  it.skipIf(!process.allowedNodeEnvironmentFlags.has('--allow-addons'))('runs the child under Node\'s permission model: no reads outside its code, no writes, no processes', async () => {
    const { runner: r } = rogue();
    await expect(callPlugin(r, 'probeHost')).resolves.toEqual({
      readEtc: 'ERR_ACCESS_DENIED', readKernelSources: 'ERR_ACCESS_DENIED', writeTmp: 'ERR_ACCESS_DENIED', spawn: 'ERR_ACCESS_DENIED', worker: 'ERR_ACCESS_DENIED',
    });
  });

  it('kills a child that does not answer by deadline + grace, and replaces it', async () => {
    const { runner: r } = rogue();
    const { pid } = await callPlugin(r, 'ok') as { pid: number };
    const started = Date.now();
    const other = callPlugin(r, 'hang', {}, { deadlineMs: 5000 });
    await expectFailure(callPlugin(r, 'hang', {}, { deadlineMs: 200 }), 'timeout', /the sandbox process was killed and will be replaced/);
    expect(Date.now() - started).toBeLessThan(1500);
    await expectFailure(other, 'crashed', /another call on it hung/);
    const after = await callPlugin(r, 'ok') as { pid: number };
    expect(after.pid).not.toBe(pid);
  });

  it('fails in-flight calls with crashed when the child dies, then restarts it', async () => {
    const { runner: r } = rogue();
    await expectFailure(callPlugin(r, 'exitNow'), 'crashed', /the sandbox process exited \(code 3\)/);
    await expect(callPlugin(r, 'ok')).resolves.toMatchObject({ env: [] });
  });

  it('backs off between restarts of a child that keeps dying', async () => {
    const { runner: r } = rogue({ restartBackoffMs: { initial: 200, max: 400 } });
    await expectFailure(callPlugin(r, 'exitNow'), 'crashed');
    await expectFailure(callPlugin(r, 'exitNow'), 'crashed');
    const started = Date.now();
    await callPlugin(r, 'ok');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('reports a child that cannot start as unavailable', async () => {
    const { runner: r } = rogue({ source: 'exit-on-init', restartBackoffMs: { initial: 10, max: 10 } });
    await expectFailure(callPlugin(r, 'ok'), 'unavailable', /exited while starting \(code 7\)/);
  });

  it('marks a plugin whose entry does not compile as unavailable for good', async () => {
    const { runner: r } = rogue({ source: 'syntax-error' });
    await expectFailure(callPlugin(r, 'ok'), 'unavailable', /does not load: SyntaxError/);
    await expectFailure(callPlugin(r, 'ok'), 'unavailable', /does not load: SyntaxError/);
  });

  it('refuses host operations for a call that has already ended', async () => {
    const { runner: r, broker } = rogue();
    await callPlugin(r, 'remember');
    await expect(callPlugin(r, 'staleOp')).resolves.toBe('sent');
    expect(broker.ops).toEqual([]);
  });

  it('checks every op field by field before the broker sees it', async () => {
    const broker = new FakeBroker();
    broker.kv.set('k', 'v');
    const { runner: r } = rogue({ broker });
    const answer = await callPlugin(r, 'forgedOps') as { answer: Record<string, unknown> };
    expect(broker.ops.map((o) => o.op)).toEqual([{ op: 'kv.get', key: 'k' }]);
    expect(answer.answer).toEqual({ t: 'opResult', callId: expect.any(Number), opId: 5, ok: true, valueJson: '{"value":"v"}' });
  });

  it('re-checks results: size, JSON, codes and __proto__ keys', async () => {
    const { runner: r } = rogue({ maxResultBytes: 1024 * 1024 });
    await expectFailure(callPlugin(r, 'hugeResult'), 'bad_result', /over the 1048576-byte limit/);
    await expectFailure(callPlugin(r, 'notJson'), 'bad_result', /not valid JSON/);
    await expectFailure(callPlugin(r, 'madeUpCode'), 'plugin_error', /pwned/);
    const clean = await callPlugin(r, 'protoResult') as Record<string, unknown>;
    expect(clean).toEqual({ a: 1, b: {} });
    expect(Object.hasOwn(clean, '__proto__')).toBe(false);
    await expect(callPlugin(r, 'garbage')).resolves.toBe('still fine');
  });

  it('fails calls with unavailable once closed', async () => {
    const { runner: r } = rogue();
    const hanging = callPlugin(r, 'hang');
    await new Promise((res) => setTimeout(res, 100));
    await r.close();
    await expectFailure(hanging, 'unavailable', /closed/);
    await expectFailure(callPlugin(r, 'ok'), 'unavailable', /closed/);
  });
});
