import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { PluginEntry } from '../../../kernel/src/plugins/catalog.js';
import { WorkerRunner } from '../../../kernel/src/plugins/runners/worker/worker-runner.js';
import { callError, issueCall, reason, recordingBroker, runtimeEntries } from './support.js';

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

  it('refuses calls once closed', async () => {
    const r = new WorkerRunner(notifier, {}, broker, { log });
    await r.close();
    expect((await callError(r.call(issueCall('ok')))).code).toBe('unavailable');
  });
});
