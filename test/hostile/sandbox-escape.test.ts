import path from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IsolateRunner } from '../../kernel/src/plugins/runners/isolate/index.js';
import { callPlugin, expectFailure, expectRecovered, FakeBroker, FIXTURES, runnerFor } from './support.js';

// The sandbox does not touch a database: run once, not per database project.
describe('isolate sandbox: a well-behaved plugin', () => {
  let runner: IsolateRunner;
  let broker: FakeBroker;
  beforeAll(() => { ({ runner, broker } = runnerFor('well-behaved.js')); });
  afterAll(() => runner.close());

  it('runs an issuer through ctx (kv, secrets, log, timers) and returns its JSON result', async () => {
    const first = await callPlugin(runner, 'issue', { commonName: 'a.example.test' });
    const second = await callPlugin(runner, 'issue', { commonName: 'b.example.test' });
    expect(first).toMatchObject({ status: 'issued', certificatePem: expect.stringContaining('a.example.test/1/key') });
    expect(second).toMatchObject({ certificatePem: expect.stringContaining('b.example.test/2/key') });
    const log = broker.opsNamed('log')[0];
    expect(log.op).toEqual({ op: 'log', level: 'info', message: 'issuing', fields: { commonName: 'a.example.test' } });
    expect(log.ctx).toMatchObject({ pluginId: 'hostile-well-behaved', instanceId: 'iss-test', grants: { kv: true } });
    expect(broker.opsNamed('kv.set').map((o) => o.op)).toEqual([
      { op: 'kv.set', key: 'counter', value: 1 }, { op: 'kv.set', key: 'counter', value: 2 },
    ]);
  });

  it('gives every call a fresh context with a frozen config and the call deadline', async () => {
    await expect(callPlugin(runner, 'validateConfig')).resolves.toEqual({ ok: true });
    const deadlineMs = 2500;
    const before = Date.now();
    const described = await callPlugin(runner, 'describeContext', {}, { deadlineMs, instanceId: null }) as Record<string, unknown>;
    expect(described).toMatchObject({ pluginId: 'hostile-well-behaved', instanceId: null, nowIsNumber: true, loadsSeenByThisCall: 1 });
    expect(described.deadline).toBeGreaterThanOrEqual(before + deadlineMs);
    expect(described.members).toEqual(['ca', 'clock', 'config', 'events', 'exec', 'fs', 'http', 'instanceId', 'issuance', 'kv', 'log', 'pluginId', 'secrets']);
  });

  it('refuses methods the plugin does not have, and names that only objects inherit', async () => {
    await expectFailure(callPlugin(runner, 'revoke'), 'not_supported', /does not implement revoke/);
    await expectFailure(callPlugin(runner, 'toString'), 'not_supported');
    await expectFailure(callPlugin(runner, 'constructor'), 'not_supported');
    await expectRecovered(runner);
  });

  it('runs an ES module plugin bundled with esbuild --format=cjs, as docs/plugins.md says', async () => {
    const bundle = await build({
      stdin: {
        contents: "import { definePlugin } from '@certctl/sdk';\n"
          + "export default definePlugin({ kind: 'issuer', async issue(request) { return { status: 'denied', reason: `no ${request.commonName}` }; } });",
        loader: 'ts',
        resolveDir: path.resolve(FIXTURES, '../../..'),
      },
      bundle: true, format: 'cjs', platform: 'neutral', target: 'es2022', write: false, logLevel: 'silent',
    });
    const { runner: r } = runnerFor('well-behaved.js', { pluginId: 'bundled', source: bundle.outputFiles[0].text });
    try {
      await expect(callPlugin(r, 'issue', { commonName: 'x.test' })).resolves.toEqual({ status: 'denied', reason: 'no x.test' });
    } finally {
      await r.close();
    }
  });

  it('refuses an entry whose exported kind is not the manifest kind', async () => {
    const { runner: r } = runnerFor('well-behaved.js', { pluginId: 'wrong-kind', kind: 'notifier' });
    try {
      await expectFailure(callPlugin(r, 'validateConfig'), 'unavailable', /exports a plugin of kind "issuer", but the manifest says notifier/);
    } finally {
      await r.close();
    }
  });

  it('marks an entry that does not compile as unavailable', async () => {
    const { runner: r } = runnerFor('well-behaved.js', { pluginId: 'syntax-error', source: 'module.exports = {' });
    try {
      await expectFailure(callPlugin(r, 'validateConfig'), 'unavailable', /isolate entry does not load: SyntaxError/);
      await expectFailure(callPlugin(r, 'validateConfig'), 'unavailable', /SyntaxError/);
    } finally {
      await r.close();
    }
  });

  it('checks results against the contract of the kind', async () => {
    const { runner: r } = runnerFor('bad-results.js');
    try {
      await expectFailure(callPlugin(r, 'issue'), 'bad_result', /issue result \(status issued\) does not match the contract/);
    } finally {
      await r.close();
    }
  });
});

describe('isolate sandbox: plugins that reach for Node', () => {
  let runner: IsolateRunner;
  beforeAll(() => { ({ runner } = runnerFor('node-escape.js')); });
  afterAll(() => runner.close());

  it('has no require: fs and net fail with a clear error', async () => {
    await expectFailure(callPlugin(runner, 'requireFs'), 'plugin_error', /require\("fs"\) is not available in the sandbox/);
    await expectFailure(callPlugin(runner, 'requireNet'), 'plugin_error', /require\("net"\) is not available in the sandbox/);
    await expectRecovered(runner);
  });

  it('cannot import modules', async () => {
    await expectFailure(callPlugin(runner, 'importChildProcess'), 'plugin_error', /importChildProcess threw Error: Not supported/);
    await expectRecovered(runner);
  });

  it('has no process: binding, pid and env are unreachable', async () => {
    await expectFailure(callPlugin(runner, 'processBinding'), 'plugin_error', /ReferenceError: process is not defined/);
    await expectFailure(callPlugin(runner, 'globalProcess'), 'plugin_error', /TypeError: Cannot read properties of undefined \(reading 'pid'\)/);
    await expectFailure(callPlugin(runner, 'readEnv'), 'plugin_error', /ReferenceError: process is not defined/);
    await expectRecovered(runner);
  });

  it('sees only ECMAScript built-ins plus setTimeout and console', async () => {
    const probe = await callPlugin(runner, 'probeGlobals');
    expect(probe).toMatchObject({ found: [], viaFunction: 'undefined', viaEval: 'ReferenceError', hasSetTimeout: true });
  });

  it('fails to load when the entry needs a module at load time', async () => {
    const { runner: r } = runnerFor('node-escape.js', { source: "const fs = require('fs');\nmodule.exports = { kind: 'issuer', async issue() { return fs; } };" });
    try {
      await expectFailure(callPlugin(r, 'issue'), 'unavailable', /the isolate entry threw while loading: Error: require\("fs"\) is not available/);
    } finally {
      await r.close();
    }
  });
});

describe('isolate sandbox: host operations it was not granted', () => {
  let runner: IsolateRunner;
  let broker: FakeBroker;
  beforeAll(() => { ({ runner, broker } = runnerFor('fetch-forbidden.js')); });
  afterAll(() => runner.close());

  it('asks the broker for an undeclared host and fails the call with capability_denied', async () => {
    await expectFailure(callPlugin(runner, 'fetchUndeclared'), 'capability_denied', /host evil\.example\.net is not granted/);
    const [seen] = broker.opsNamed('http.fetch');
    expect(seen.op).toEqual({ op: 'http.fetch', request: { url: 'https://evil.example.net/exfiltrate', method: 'POST', body: 'secrets' } });
    expect(seen.ctx).toMatchObject({ pluginId: 'hostile-fetch-forbidden', grants: { http: { hosts: ['ca.example.test'] } } });
    expect(seen.ctx.deadline).toBeGreaterThan(Date.now() - 5000);
    await expectRecovered(runner);
  });

  it('asks the broker for the cloud metadata address and fails the call with capability_denied', async () => {
    await expectFailure(callPlugin(runner, 'fetchMetadata'), 'capability_denied', /169\.254\.169\.254 is a loopback, link-local or metadata address/);
    expect(broker.opsNamed('http.fetch').at(-1)?.op).toEqual({
      op: 'http.fetch', request: { url: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/', method: 'GET' },
    });
    await expectRecovered(runner);
  });

  it('hands the refusal to the plugin as an error it can catch', async () => {
    const result = await callPlugin(runner, 'fetchAndCatch');
    expect(result).toEqual({ status: 'failed', reason: 'PluginHostError/capability_denied: http.fetch: 169.254.169.254 is a loopback, link-local or metadata address', retryable: false });
  });

  it('passes granted operations through', async () => {
    await expect(callPlugin(runner, 'fetchGranted')).resolves.toBe(204);
  });

  it('refuses kv when kv is not granted', async () => {
    const { runner: r } = runnerFor('well-behaved.js', { pluginId: 'no-kv', grants: {} });
    try {
      await expectFailure(callPlugin(r, 'issue', { commonName: 'x' }), 'capability_denied', /kv is not granted/);
    } finally {
      await r.close();
    }
  });
});

describe('isolate sandbox: prototype attacks', () => {
  let runner: IsolateRunner;
  beforeAll(() => { ({ runner } = runnerFor('prototype-attacks.js')); });
  afterAll(() => runner.close());

  it('keeps prototype pollution inside the call that did it', async () => {
    await expect(callPlugin(runner, 'pollute')).resolves.toBe('polluted');
    await expect(callPlugin(runner, 'check')).resolves.toEqual({
      polluted: null, isAdmin: null, fromRequest: null, pushWorks: true, jsonWorks: true, configFrozen: true, requestProto: true,
    });
    // ... and out of the kernel.
    const probe: Record<string, unknown> = {};
    expect(probe.polluted).toBeUndefined();
    expect(probe.isAdmin).toBeUndefined();
    expect(JSON.stringify({ a: [1] })).toBe('{"a":[1]}');
  });

  it('cannot smuggle __proto__ into the kernel through a result', async () => {
    const result = await callPlugin(runner, 'returnProtoKeys') as Record<string, unknown>;
    expect(result).toEqual({ status: 'failed', reason: 'x', retryable: false, nested: {} });
    expect(Object.hasOwn(result, '__proto__')).toBe(false);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('cannot climb from the ctx functions to the host', async () => {
    const attempts = await callPlugin(runner, 'climb');
    expect(attempts).toEqual({
      ctorProcess: 'undefined',
      asyncCtorProcess: 'Promise',
      ctorGlobalKeys: '',
      protoChain: 'undefined',
      fetchProto: '',
      errorStackHost: 'false',
      hostFunctionLeaked: 'false',
    });
    await expect(callPlugin(runner, 'whoCalls')).resolves.toBe('null');
    await expectRecovered(runner);
  });
});
