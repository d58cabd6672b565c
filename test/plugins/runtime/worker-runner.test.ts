import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { PluginEntry } from '../../../kernel/src/plugins/catalog.js';
import { WorkerRunner } from '../../../kernel/src/plugins/runners/worker/worker-runner.js';
import { callError, issueCall, reason, recordingBroker, runtimeEntries } from './support.js';
import { waitFor } from '../../support/wait.js';

const log = pino({ level: 'silent' });

describe('WorkerRunner (first-party plugins in a Piscina pool)', () => {
  const { issuer, notifier } = runtimeEntries();
  const broker = recordingBroker();
  let runner: WorkerRunner;
  let notifierRunner: WorkerRunner;

  beforeAll(() => {
    runner = new WorkerRunner(issuer, issuer.capabilities, broker, { log, maxOldGenerationSizeMb: 48, maxThreads: 2 });
    notifierRunner = new WorkerRunner(notifier, notifier.capabilities, broker, { log });
  });
  afterAll(async () => {
    await runner.close();
    await notifierRunner.close();
  });

  const notify = (subject = 'hello') => notifierRunner.call({
    pluginId: 'runtime-notifier', instanceId: null, method: 'notify', config: {}, deadline: Date.now() + 10_000,
    request: { notificationId: 'n1', type: 'RenewalSuccess', severity: 'info', subject, message: 'm', recipients: [] },
  });

  it('runs a method and returns its JSON result', async () => {
    expect(runner.tier).toBe('worker');
    await expect(runner.call(issueCall('ok', { sans: ['a.test', 'b.test'] }))).resolves.toEqual({ status: 'issued', certificatePem: 'CERT for a.test,b.test', chainPem: [] });
  });

  it('gives the plugin its config frozen, and its own ids', async () => {
    const r = reason(await runner.call(issueCall('config', { instanceId: 'iss-1' })));
    expect(r).toEqual({ config: { url: 'https://ca.example.test', label: 'fixture' }, frozen: true, pluginId: 'runtime-issuer', instanceId: 'iss-1' });
    expect(reason(await runner.call(issueCall('mutate')))).toEqual({ url: 'https://ca.example.test' });
  });

  it('gives the worker no environment of the kernel', async () => {
    process.env.CERTCTL_SECRET_PROBE = 'leak';
    expect(reason(await runner.call(issueCall('env')))).toEqual({ keys: [] });
  });

  it('routes capability members through the broker, tagged with the call', async () => {
    broker.ops.length = 0;
    const r = reason(await runner.call(issueCall('secret', { instanceId: 'iss-9' })));
    expect(r).toEqual({ token: 'tok-123', password: null, missing: null });
    expect(broker.ops.map((o) => o.op)).toEqual([{ op: 'secrets.get', path: 'api_token' }, { op: 'secrets.get', path: 'auth.password' }, { op: 'secrets.get', path: 'nope' }]);
    expect(broker.ops[0].ctx).toMatchObject({ pluginId: 'runtime-issuer', instanceId: 'iss-9', grants: issuer.capabilities });
  });

  it('turns console output into log ops instead of writing to the kernel stdout', async () => {
    broker.ops.length = 0;
    await runner.call(issueCall('console'));
    const logs = broker.ops.map((o) => o.op).filter((o) => o.op === 'log');
    expect(logs).toEqual([
      { op: 'log', level: 'info', message: 'hello from the plugin { a: 1 }', fields: { console: true } },
      { op: 'log', level: 'error', message: 'and an error line', fields: { console: true } },
    ]);
  });

  it('delivers log lines in order around host calls, the last ones with the outcome', async () => {
    broker.ops.length = 0;
    await runner.call(issueCall('logs-around-calls'));
    // Everything was handled by the time the call resolved, in the order the plugin did it.
    expect(broker.ops.map((o) => o.op)).toEqual([
      { op: 'log', level: 'info', message: 'before the host call', fields: { n: 1 } },
      { op: 'secrets.get', path: 'api_token' },
      { op: 'log', level: 'warn', message: 'after the host call' },
    ]);
  });

  it('a host refusal the plugin does not catch fails the call with the refusal code', async () => {
    const err = await callError(runner.call(issueCall('fs')));
    expect(err.code).toBe('capability_denied');
    expect(err.message).toContain('fs.read is not granted');
  });

  it('a throw fails only that call with plugin_error, whatever was thrown', async () => {
    const e1 = await callError(runner.call(issueCall('throw')));
    expect(e1).toMatchObject({ code: 'plugin_error', pluginId: 'runtime-issuer' });
    expect(e1.message).toContain('Error: the CA said no');
    const e2 = await callError(runner.call(issueCall('throw-string')));
    expect(e2.code).toBe('plugin_error');
    expect(e2.message).toContain('non-Error value thrown: a bare string');
    const e3 = await callError(runner.call(issueCall('throw-object')));
    expect(e3.code).toBe('plugin_error');
    expect(e3.message).toContain('non-Error value thrown');
    await expect(runner.call(issueCall('ok'))).resolves.toMatchObject({ status: 'issued' });
  });

  it('Done #3: a plugin that kills its worker fails only that call; the pool replaces the thread and the next call works', async () => {
    const before = reason(await runner.call(issueCall('thread'))).threadId;
    // The crash and a healthy call of the same plugin in flight together, plus another plugin.
    const [crash, healthy, other] = await Promise.allSettled([runner.call(issueCall('exit')), runner.call(issueCall('ok')), notify('slow')]);
    expect(crash.status).toBe('rejected');
    expect((crash as PromiseRejectedResult).reason).toMatchObject({ code: 'crashed' });
    expect((crash as PromiseRejectedResult).reason.message).toMatch(/worker thread died \(worker exited with code: 7\)/);
    expect(healthy).toMatchObject({ status: 'fulfilled', value: { status: 'issued' } });
    expect(other).toMatchObject({ status: 'fulfilled', value: { status: 'sent' } });

    const uncaught = await callError(runner.call(issueCall('uncaught')));
    expect(uncaught.code).toBe('crashed');
    expect(uncaught.message).toContain('thrown from a timer');

    await expect(runner.call(issueCall('ok'))).resolves.toMatchObject({ status: 'issued' });
    const after = reason(await runner.call(issueCall('thread'))).threadId;
    expect(typeof after).toBe('number');
    expect(typeof before).toBe('number');
  });

  it('a worker that runs out of heap fails with memory_limit and is replaced', async () => {
    const err = await callError(runner.call(issueCall('oom', { timeoutMs: 30_000 })));
    expect(err.code).toBe('memory_limit');
    expect(err.message).toContain('48 MB');
    await expect(runner.call(issueCall('ok'))).resolves.toMatchObject({ status: 'issued' });
  });

  it('a call that never settles times out at its deadline; the runner keeps serving', async () => {
    const t0 = Date.now();
    const err = await callError(runner.call(issueCall('hang', { timeoutMs: 300 })));
    expect(err.code).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(2_000);
    await expect(runner.call(issueCall('ok'))).resolves.toMatchObject({ status: 'issued' });
  });

  it('a busy loop is stopped: the caller hears timeout at the deadline and the thread is terminated', async () => {
    const t0 = Date.now();
    const err = await callError(runner.call(issueCall('spin', { timeoutMs: 300 })));
    expect(err.code).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(1_000);
    await expect(runner.call(issueCall('ok'))).resolves.toMatchObject({ status: 'issued' });
    // Both threads busy-looping at once still leave the runner usable afterwards.
    const both = await Promise.allSettled([runner.call(issueCall('spin', { timeoutMs: 200 })), runner.call(issueCall('spin', { timeoutMs: 200 }))]);
    expect(both.map((b) => (b as PromiseRejectedResult).reason?.code)).toEqual(['timeout', 'timeout']);
    await expect(runner.call(issueCall('ok'))).resolves.toMatchObject({ status: 'issued' });
  });

  it('refuses results that are not plain JSON or are too large (bad_result)', async () => {
    const e1 = await callError(runner.call(issueCall('not-json')));
    expect(e1.code).toBe('bad_result');
    expect(e1.message).toContain('result.at is a Date object');
    const e2 = await callError(runner.call(issueCall('huge')));
    expect(e2.code).toBe('bad_result');
    expect(e2.message).toMatch(/over the 2097152-byte limit/);
  });

  it('reports a method the module does not implement as not_supported', async () => {
    const err = await callError(runner.call({ ...issueCall('ok'), method: 'getCaChain' }));
    expect(err.code).toBe('not_supported');
    const proto = await callError(runner.call({ ...issueCall('ok'), method: 'toString' }));
    expect(proto.code).toBe('not_supported');
  });

  it('a call with no time left fails at once with timeout', async () => {
    const err = await callError(runner.call({ ...issueCall('ok'), deadline: Date.now() - 1 }));
    expect(err.code).toBe('timeout');
  });

  it('refuses an entry outside the plugin directory, or missing, as unavailable', async () => {
    const escape: PluginEntry = { ...issuer, manifest: { ...issuer.manifest!, entry: { worker: '../runtime-notifier/lib/index.js' } } };
    const missing: PluginEntry = { ...issuer, manifest: { ...issuer.manifest!, entry: { worker: 'nope.js' } } };
    for (const [entry, text] of [[escape, 'outside the plugin directory'], [missing, 'does not exist']] as const) {
      const r = new WorkerRunner(entry, {}, broker, { log });
      const err = await callError(r.call(issueCall('ok')));
      expect(err.code).toBe('unavailable');
      expect(err.message).toContain(text);
      await r.close();
    }
  });

  // Protocols by default; another plugin when its manifest sets workerConcurrency (the local CA's calls wait on ca.sign).
  it.each([['protocol', 'handle', undefined], ['issuer', 'issue', 8]] as const)('a %s plugin\'s thread serves several calls at once, each with its own deadline and console lines', async (kind, method, workerConcurrency) => {
    // Each call waits on a host call (here: a broker that answers after 500 ms): one call per
    // thread would take 4 x 500 ms on one thread; several at once take about 500 ms.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `certctl-${kind}-worker-`));
    fs.writeFileSync(path.join(dir, 'index.js'), `import { threadId } from 'node:worker_threads';
      export default { kind: '${kind}', async ${method}(req, ctx) {
        console.log('start', req.n);
        if (req.n === 'hang') await new Promise(() => {});
        if (req.n === 'spin') for (;;) { /* busy */ }
        await ctx.secrets.get('slow');
        console.log('end', req.n);
        return { n: req.n, threadId };
      } };`);
    const entry = { ...notifier, id: `runtime-${kind}`, kind, dir, manifest: { ...notifier.manifest!, id: `runtime-${kind}`, kind, entry: { worker: 'index.js' }, ...(workerConcurrency ? { workerConcurrency } : {}) } } as PluginEntry;
    const ops: { ctx: { deadline: number }; op: { op: string; message?: string } }[] = [];
    const slow = { async handle(ctx: never, op: never) { ops.push({ ctx, op }); if ((op as { op: string }).op === 'secrets.get') await new Promise((r) => setTimeout(r, 500)); return null; } };
    const r = new WorkerRunner(entry, {}, slow, { log, maxThreads: 1 });
    try {
      const call = (n: string, ms = 10_000) => r.call({ pluginId: `runtime-${kind}`, instanceId: null, method, request: { n }, config: {}, deadline: Date.now() + ms });
      await call('warm');
      const started = Date.now();
      const results = (await Promise.all(['a', 'b', 'c', 'd'].map((n) => call(n)))) as { n: string; threadId: number }[];
      expect(Date.now() - started).toBeLessThan(1500);
      expect(results.map((x) => x.n)).toEqual(['a', 'b', 'c', 'd']);
      expect(new Set(results.map((x) => x.threadId)).size).toBe(1);
      // Console lines belong to the call that wrote them, although the calls interleaved.
      for (const n of ['a', 'b', 'c', 'd']) {
        const mine = ops.filter((o) => o.op.op === 'log' && / (\w+)$/.exec(o.op.message ?? '')?.[1] === n);
        expect(mine.map((o) => o.op.message)).toEqual([`start ${n}`, `end ${n}`]);
        expect(new Set(mine.map((o) => o.ctx.deadline)).size).toBe(1);
      }
      // A call past its deadline times out alone; its neighbours still answer.
      const [hung, fine] = await Promise.allSettled([call('hang', 500), call('e')]);
      expect(hung).toMatchObject({ status: 'rejected', reason: { code: 'timeout' } });
      expect(fine).toMatchObject({ status: 'fulfilled', value: { n: 'e' } });
      // One still busy after its deadline is stopped with its pool (a call that reached the
      // stalled thread meanwhile fails too); calls after that are served by a fresh pool.
      const spinning = new WorkerRunner(entry, {}, slow, { log, maxThreads: 1 });
      const on = (n: string, ms = 10_000) => spinning.call({ pluginId: `runtime-${kind}`, instanceId: null, method, request: { n }, config: {}, deadline: Date.now() + ms });
      try {
        await expect(on('spin', 500)).rejects.toMatchObject({ code: 'timeout' });
        expect(await waitFor('a call served after the busy one was stopped', () => on('f').catch(() => null))).toMatchObject({ n: 'f' });
      } finally {
        await spinning.close();
      }
    } finally {
      await r.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses calls once closed', async () => {
    const r = new WorkerRunner(notifier, {}, broker, { log });
    await r.close();
    expect((await callError(r.call(issueCall('ok')))).code).toBe('unavailable');
  });
});
