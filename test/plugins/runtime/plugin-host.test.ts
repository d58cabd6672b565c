import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import type { PluginEntry } from '../../../kernel/src/plugins/catalog.js';
import { PluginHost } from '../../../kernel/src/plugins/host/plugin-host.js';
import type { PluginRunner } from '../../../kernel/src/plugins/host/contracts.js';
import { POSTGRES_UNAVAILABLE } from '../../support/test-db.js';
import { startTestKernel, type TestKernel } from '../../support/test-kernel.js';
import { capturingLogger } from '../support.js';
import { callError, reason, RUNTIME_FIXTURES_DIR } from './support.js';

const issueRequest = (mode: string, sans: string[] = ['a.example.test']): Json => ({
  certificateId: 'mc-host', csrPem: 'CSR', commonName: mode, sans, profile: { id: null, maxTtlSeconds: null, ekus: [] },
});

describe.skipIf(POSTGRES_UNAVAILABLE)('PluginHost in a running kernel', () => {
  let t: TestKernel;
  let ca: http.Server;
  let caPort = 0;
  const captured = capturingLogger();
  const host = () => t.kernel.pluginHost;

  beforeAll(async () => {
    // A stand-in CA on loopback: the fixture's manifest declares http://127.0.0.1 exactly.
    ca = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => res.end(`ca got ${req.method} ${body} x-test=${req.headers['x-test']}`));
    });
    await new Promise<void>((r) => ca.listen(0, '127.0.0.1', () => r()));
    caPort = (ca.address() as AddressInfo).port;
    t = await startTestKernel({ env: { CERTCTL_PLUGIN_DIRS: RUNTIME_FIXTURES_DIR }, start: { log: captured.log } });
    const created = await t.api.post('/api/v1/issuers', {
      id: 'iss-runtime', name: 'Runtime', type: 'runtime-issuer',
      config: { url: 'https://ca.example.test', api_token: 'tok-secret-1', auth: { user: 'u', password: 'pw-secret-2' } },
    });
    expect(created.status, created.text).toBe(201);
    const other = await t.api.post('/api/v1/issuers', { id: 'iss-off', name: 'Off', type: 'runtime-issuer', enabled: false, config: { url: 'https://ca.example.test', api_token: 'tok-x' } });
    expect(other.status, other.text).toBe(201);
    const notifier = await t.api.post('/api/v1/notifiers', { id: 'ntf-runtime', name: 'Runtime notifier', type: 'runtime-notifier', config: {} });
    expect(notifier.status, notifier.text).toBe(201);
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise<void>((r) => (ca ? ca.close(() => r()) : r()));
  });

  it('is part of the kernel services (with the crypto pool) and runs first-party plugins in the worker tier', async () => {
    expect(host()).toBeInstanceOf(PluginHost);
    await expect(t.kernel.crypto.verifyCsr('not a csr')).resolves.toMatchObject({ valid: false });
    expect(host().tierFor(t.kernel.plugins.get('runtime-issuer')!)).toEqual({ tier: 'worker', trusted: true });
  });

  it('calls a method with the instance config: defaults applied, secrets left out', async () => {
    const r = reason(await host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('config')));
    expect(r).toEqual({ config: { url: 'https://ca.example.test', label: 'fixture', auth: { user: 'u' } }, frozen: true, pluginId: 'runtime-issuer', instanceId: 'iss-runtime' });
  });

  it("hands out the instance's own secrets through secrets.get", async () => {
    expect(reason(await host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('secret')))).toEqual({ token: 'tok-secret-1', password: 'pw-secret-2', missing: null });
  });

  it('validates results against the contract', async () => {
    await expect(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('ok'))).resolves.toEqual({ status: 'issued', certificatePem: 'CERT for a.example.test', chainPem: [] });
    const missing = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('bad-shape')));
    expect(missing.code).toBe('bad_result');
    expect(missing.message).toContain('/certificatePem is required');
    const status = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('bad-status')));
    expect(status.code).toBe('bad_result');
    expect(status.message).toContain('status must be one of issued, pending, failed, denied');
  });

  it('refuses a sign order from a plugin without the ca capability (capability_denied)', async () => {
    const err = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('sign-order')));
    expect(err.code).toBe('capability_denied');
    expect(err.message).toContain('capability ca');
  });

  it('refuses methods outside the contract or behind an undeclared feature (not_supported)', async () => {
    await expect(host().call('runtime-issuer', 'iss-runtime', 'renew', issueRequest('ok'))).resolves.toMatchObject({ status: 'issued' });
    const revoke = await callError(host().call('runtime-issuer', 'iss-runtime', 'revoke', { serialNumber: '01', reason: 'keyCompromise' }));
    expect(revoke.code).toBe('not_supported');
    expect(revoke.message).toContain('does not declare the "revoke" feature');
    expect((await callError(host().call('runtime-issuer', 'iss-runtime', 'deploy', {}))).code).toBe('not_supported');
    expect((await callError(host().call('runtime-issuer', 'iss-runtime', 'getCaChain', {}))).code).toBe('not_supported');
  });

  it('refuses unknown plugins, foreign, disabled or missing instances (unavailable)', async () => {
    const cases: [string, string | null, string][] = [
      ['no-such-plugin', null, 'no plugin "no-such-plugin" is installed'],
      ['runtime-issuer', 'iss-off', 'issuer iss-off is disabled'],
      ['runtime-issuer', 'iss-missing', 'issuer iss-missing does not exist'],
      ['runtime-issuer', 'ntf-runtime', 'issuer ntf-runtime does not exist'],
      ['runtime-notifier', 'iss-runtime', 'notifier iss-runtime does not exist'],
    ];
    for (const [plugin, instance, text] of cases) {
      const err = await callError(host().call(plugin, instance, plugin === 'runtime-notifier' ? 'notify' : 'issue', issueRequest('ok')));
      expect(err.code, text).toBe('unavailable');
      expect(err.message).toContain(text);
    }
  });

  it('refuses an instance whose stored config no longer validates', async () => {
    await t.kernel.db.knex('issuers').where({ id: 'iss-runtime' }).update({ config: JSON.stringify({ url: 'not a uri', auth: { user: 'u' } }) });
    try {
      const err = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('ok')));
      expect(err.code).toBe('unavailable');
      expect(err.message).toContain("stored config does not match the plugin's schema: /url");
    } finally {
      await t.kernel.db.knex('issuers').where({ id: 'iss-runtime' }).update({ config: JSON.stringify({ url: 'https://ca.example.test', label: 'fixture', auth: { user: 'u' } }) });
    }
  });

  it('reaches a declared loopback CA through http.fetch; refuses the metadata address', async () => {
    const r = reason(await host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('fetch', [`http://127.0.0.1:${caPort}/sign`])));
    expect(r).toEqual({ status: 200, body: 'ca got POST ping x-test=1', encoding: 'utf8' });
    const meta = reason(await host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('fetch-caught', ['http://169.254.169.254/latest/meta-data/'])));
    expect(meta).toEqual({ caught: expect.stringContaining('host 169.254.169.254 is not among the plugin\'s granted hosts'), code: 'capability_denied' });
    const uncaught = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('fetch-uncaught', ['https://undeclared.test/'])));
    expect(uncaught.code).toBe('capability_denied');
  });

  it('keeps kv state per plugin in plugin_kv', async () => {
    const r = reason(await host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('kv')));
    expect(r).toEqual({ got: { one: { n: 1 }, two: null, absent: true }, list: ['a/1', 'a/2'], after: ['a/2', 'b/1'] });
    const rows = await t.kernel.db.knex('plugin_kv').where({ plugin_id: 'runtime-issuer' }).orderBy('key').select('key');
    expect(rows.map((x: { key: string }) => x.key)).toEqual(['a/2', 'b/1']);
  });

  it('refuses capabilities the manifest did not ask for', async () => {
    const err = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('events')));
    expect(err.code).toBe('capability_denied');
    expect(err.message).toContain('capability events');
  });

  it("lets a plugin with the events grant emit: audit row and the kernel's event bus", async () => {
    const seen: unknown[] = [];
    const off = (e: unknown) => seen.push(e);
    host().events.on('event', off);
    const notify = { notificationId: 'n-1', type: 'RenewalSuccess', severity: 'info', subject: 's', message: 'm', recipients: [] };
    await expect(host().call('runtime-notifier', 'ntf-runtime', 'notify', notify)).resolves.toEqual({ status: 'sent' });
    const row = await t.kernel.db.knex('audit_events').where({ action: 'plugin_event', actor: 'plugin:runtime-notifier' }).first();
    expect(row).toMatchObject({ category: 'system', resource_id: 'runtime-notifier' });
    expect(seen).toMatchObject([{ pluginId: 'runtime-notifier', instanceId: 'ntf-runtime', type: 'notified', data: { notificationId: 'n-1', channel: '#certs' } }]);
    host().events.off('event', off);
  });

  it('logs plugin lines tagged with plugin and instance, secrets redacted', async () => {
    await host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('log'));
    const line = captured.lines().map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'issuing');
    expect(line).toMatchObject({ plugin_id: 'runtime-issuer', instance_id: 'iss-runtime', fields: { password: '[redacted]', commonName: 'log' } });
    expect(captured.text()).not.toContain('hunter2');
    expect(captured.text()).not.toContain('tok-secret-1');
  });

  it('a crash fails the call; the kernel keeps serving and the next call works', async () => {
    const err = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('exit')));
    expect(err.code).toBe('crashed');
    const health = await t.api.get('/health');
    expect(health.status).toBe(200);
    await expect(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('ok'))).resolves.toMatchObject({ status: 'issued' });
  });

  it('honours the per-call timeout', async () => {
    const t0 = Date.now();
    const err = await callError(host().call('runtime-issuer', 'iss-runtime', 'issue', issueRequest('spin'), { timeoutMs: 250 }));
    expect(err.code).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('rejects a request that is not plain JSON before running anything', async () => {
    await expect(host().call('runtime-issuer', 'iss-runtime', 'issue', { when: new Date() } as unknown as Json)).rejects.toThrow(/request\.when is a Date object/);
  });
});

describe('PluginHost runner selection', () => {
  const entry = (over: Partial<PluginEntry>): PluginEntry => ({
    id: 'p', kind: 'issuer', name: 'p', version: '1', description: '', source: 'installed', dir: '/nonexistent', status: 'enabled', reason: null,
    manifest: { id: 'p', kind: 'issuer', apiVersion: 'certctl.plugin/v1', engines: { certctl: '*' }, runtimes: ['isolate'], entry: { isolate: 'i.js' }, configSchema: { type: 'object' }, capabilities: { kv: true, http: { hosts: ['a.test'] } } },
    features: [], capabilities: { kv: true, http: { hosts: ['a.test'] } }, grants: { kv: true }, runtime: 'isolate', validateConfig: null, secretFields: [], installation: null,
    ...over,
  } as PluginEntry);
  const base = { knex: null as never, cipher: null as never, log: capturingLogger().log, broker: { handle: async () => null } };

  it('sends installed plugins to the isolate factory with their granted (not requested) capabilities', async () => {
    const e = entry({});
    const made: unknown[] = [];
    const fake: PluginRunner = { tier: 'isolate', call: async () => ({ status: 'issued', certificatePem: 'c', chainPem: [] }), close: async () => {} };
    const h = new PluginHost({ ...base, catalog: { get: () => e }, isolateRunnerFactory: (en, grants) => { made.push([en.id, grants]); return fake; } });
    expect(h.tierFor(e)).toEqual({ tier: 'isolate', trusted: false });
    await expect(h.call('p', null, 'issue', issueRequest('ok'))).resolves.toMatchObject({ status: 'issued' });
    expect(made).toEqual([['p', { kv: true }]]);
    const viaLookup = new PluginHost({ ...base, catalog: { get: () => e }, grantsFor: async () => ({ events: true }), isolateRunnerFactory: (en, grants) => { made.push([en.id, grants]); return fake; } });
    await viaLookup.call('p', null, 'issue', issueRequest('ok'));
    expect(made[1]).toEqual(['p', { events: true }]);
    await h.close();
    await viaLookup.close();
  });

  it('never runs a third-party plugin in a worker, and needs the isolate runner for isolate plugins', async () => {
    const h = new PluginHost({ ...base, catalog: { get: () => undefined } });
    expect(h.tierFor(entry({ runtime: 'worker' }))).toEqual({ reason: 'only first-party plugins run in worker threads' });
    expect(h.tierFor(entry({}))).toEqual({ reason: 'the isolate runner is not available in this kernel' });
    expect(h.tierFor(entry({ source: 'workspace', runtime: 'worker' }))).toEqual({ tier: 'worker', trusted: true });
    await h.close();
  });

  it('builds a new runner when the catalog entry changes, closing the old one', async () => {
    let current = entry({});
    const closed: string[] = [];
    const listeners: (() => void)[] = [];
    const factory = (en: PluginEntry): PluginRunner => ({ tier: 'isolate', call: async () => ({ status: 'denied', reason: en.version }), close: async () => { closed.push(en.version); } });
    const h = new PluginHost({ ...base, catalog: { get: () => current, onChange: (fn) => { listeners.push(fn); return () => {}; } }, isolateRunnerFactory: factory });
    await expect(h.call('p', null, 'issue', issueRequest('ok'))).resolves.toEqual({ status: 'denied', reason: '1' });
    current = entry({ version: '2' });
    for (const fn of listeners) fn();
    await new Promise((r) => setTimeout(r, 10));
    expect(closed).toEqual(['1']);
    await expect(h.call('p', null, 'issue', issueRequest('ok'))).resolves.toEqual({ status: 'denied', reason: '2' });
    await h.close();
    expect(closed).toEqual(['1', '2']);
    expect((await callError(h.call('p', null, 'issue', issueRequest('ok')))).code).toBe('unavailable');
  });
});
