import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import type { PluginFailureCode } from '../../kernel/src/plugins/host/contracts.js';
import { fixturePackageJson, tarball } from '../plugins/install-fixtures.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { expectFailure, fixtureSource } from './support.js';

interface HostilePackage {
  id: string;
  fixture: string;
  /** The fixture method that becomes the plugin's `issue` (the host only calls contract methods). */
  attack: string;
  codes: PluginFailureCode[];
  message: RegExp;
  capabilities?: Record<string, unknown>;
}

const HOSTILE: HostilePackage[] = [
  { id: 'hostile-loop', fixture: 'loop-forever.js', attack: 'issue', codes: ['cpu_limit', 'timeout'], message: /issue (ran for more than \d+ ms without yielding|did not finish by its deadline)/ },
  { id: 'hostile-allocate', fixture: 'allocate.js', attack: 'issue', codes: ['memory_limit'], message: /exceeded its \d+ MB memory limit/ },
  { id: 'hostile-metadata', fixture: 'fetch-forbidden.js', attack: 'fetchMetadata', codes: ['capability_denied'], message: /169\.254\.169\.254/, capabilities: { http: { hosts: ['ca.example.test'] } } },
  { id: 'hostile-throw', fixture: 'throw-values.js', attack: 'throwString', codes: ['plugin_error'], message: /threw non-Error value thrown: boom/ },
];

/**
 * A hostile fixture script as an installable package: the fixture's attack
 * method is exported as `issue`, the manifest is a normal third-party issuer's.
 */
function hostilePackage(p: { id: string; fixture: string; attack: string; capabilities?: Record<string, unknown>; configSchema?: Record<string, unknown> }): Buffer {
  let entry = fixtureSource(p.fixture);
  if (p.attack !== 'issue') entry += `\nmodule.exports.issue = module.exports.${p.attack};\n`;
  const pkg = fixturePackageJson({
    id: p.id,
    name: `certctl-plugin-${p.id}`,
    capabilities: p.capabilities ?? {},
    configSchema: p.configSchema ?? { type: 'object' },
    manifest: { displayName: `Hostile ${p.fixture}`, engines: { certctl: '*' }, entry: { isolate: `dist/${p.fixture}` }, features: [] },
  });
  return tarball([
    { path: 'package/package.json', body: JSON.stringify(pkg, null, 2) },
    { path: `package/dist/${p.fixture}`, body: entry },
  ]);
}

/**
 * Issue 3, Done #2 through the real path: hostile plugins are installed through
 * the API, granted, configured as issuers and called through the plugin host.
 * Each attack fails with its code, the failure is recorded on the issuer
 * (health.last_error*), and well-behaved plugins and /health keep working.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('hostile plugins installed through the API', () => {
  let t: TestKernel;
  const call = (pluginId: string, instanceId: string, request: Json = { commonName: 'victim.example.test' }) =>
    t.kernel.pluginHost.call(pluginId, instanceId, 'issue', request, { timeoutMs: 8000 });

  const install = async (tgz: Buffer, id: string, capabilities: Record<string, unknown>, config: Record<string, unknown> = {}) => {
    const installed = await t.api.request('POST', '/api/v1/plugins', { rawBody: tgz, headers: { 'content-type': 'application/gzip' } });
    expect(installed.status, installed.text).toBe(201);
    const granted = await t.api.post(`/api/v1/plugins/${id}/grant`, { capabilities });
    expect(granted.status, granted.text).toBe(200);
    expect(granted.body.status).toBe('enabled');
    const issuer = await t.api.post('/api/v1/issuers', { id: `iss-${id}`, name: `Issuer ${id}`, type: id, config });
    expect(issuer.status, issuer.text).toBe(201);
    expect(issuer.body.health).toEqual({ last_error: null, last_error_code: null, last_error_at: null, last_success_at: null });
  };

  beforeAll(async () => {
    t = await startTestKernel();
    for (const h of HOSTILE) await install(hostilePackage(h), h.id, h.capabilities ?? {});
    await install(
      hostilePackage({
        id: 'well-behaved', fixture: 'well-behaved.js', attack: 'issue', capabilities: { kv: true },
        configSchema: { type: 'object', required: ['url'], properties: { url: { type: 'string' }, api_key: { type: 'string', writeOnly: true } } },
      }),
      'well-behaved', { kv: true }, { url: 'https://ca.example.test', api_key: 'k3y-value-never-shown' },
    );
  });
  afterAll(async () => { await t?.stop(); });

  it('contains every attack with its code, records it on the issuer, and keeps serving', async () => {
    // /health is polled for the whole run: the sandboxes live in another process.
    let polling = true;
    const healthStatuses: number[] = [];
    const poller = (async () => {
      while (polling) {
        healthStatuses.push((await t.api.get('/health')).status);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    try {
      const attacks = await Promise.all(HOSTILE.map(async (h) => ({ h, err: await call(h.id, `iss-${h.id}`).catch((e: unknown) => e) })));
      for (const { h, err } of attacks) {
        expect(h.codes, `${h.id}: ${String(err)}`).toContain((err as { code?: string }).code);
        await expectFailure(Promise.reject(err), (err as { code: PluginFailureCode }).code, h.message);

        const res = await t.api.get(`/api/v1/issuers/iss-${h.id}`);
        expect(res.status).toBe(200);
        const health = res.body.health as Record<string, string | null>;
        expect(h.codes).toContain(health.last_error_code);
        expect(health.last_error).toMatch(h.message);
        expect(health.last_error!.length).toBeLessThanOrEqual(1000);
        expect(Date.parse(health.last_error_at!)).toBeGreaterThan(Date.now() - 60_000);
        expect(health.last_success_at).toBeNull();
      }

      // Another plugin is untouched, its success is recorded, and its secret shows nowhere.
      const ok = (await call('well-behaved', 'iss-well-behaved', { commonName: 'ok.example.test' })) as { status: string; certificatePem: string };
      expect(ok.status).toBe('issued');
      expect(ok.certificatePem).toMatch(/ok\.example\.test\/1\/key/);
      const good = await t.api.get('/api/v1/issuers/iss-well-behaved');
      expect(good.body.health).toMatchObject({ last_error: null, last_error_code: null, last_error_at: null });
      expect(Date.parse(good.body.health.last_success_at)).toBeGreaterThan(Date.now() - 60_000);
      expect(JSON.stringify(good.body)).not.toContain('k3y-value-never-shown');

      // The list shows health too, and ?fields= can ask for it alone.
      const list = await t.api.get('/api/v1/issuers?fields=health&per_page=100');
      expect(list.status, list.text).toBe(200);
      const codes = Object.fromEntries((list.body.data as { id: string; health: { last_error_code: string | null } }[]).map((r) => [r.id, r.health.last_error_code]));
      expect(codes).toMatchObject({ 'iss-hostile-allocate': 'memory_limit', 'iss-hostile-metadata': 'capability_denied', 'iss-hostile-throw': 'plugin_error', 'iss-well-behaved': null });
    } finally {
      polling = false;
      await poller;
    }
    expect(healthStatuses.length).toBeGreaterThan(0);
    expect(healthStatuses.every((s) => s === 200), `statuses: ${healthStatuses.join(',')}`).toBe(true);
  });

  it('a later failure replaces the recorded one, and a recovery is recorded at once', async () => {
    const before = (await t.api.get('/api/v1/issuers/iss-hostile-throw')).body.health;
    await new Promise((r) => setTimeout(r, 5));
    await expectFailure(call('hostile-throw', 'iss-hostile-throw'), 'plugin_error');
    const after = (await t.api.get('/api/v1/issuers/iss-hostile-throw')).body.health;
    expect(Date.parse(after.last_error_at)).toBeGreaterThan(Date.parse(before.last_error_at));

    // Each attacked runner recovers: the metadata plugin's sandbox still answers a contract call it supports.
    const v = await t.kernel.pluginHost.call('hostile-metadata', 'iss-hostile-metadata', 'validateConfig', { config: {} });
    expect(v).toEqual({ ok: true });
    const healed = (await t.api.get('/api/v1/issuers/iss-hostile-metadata')).body.health;
    expect(healed.last_error_code).toBe('capability_denied');
    expect(Date.parse(healed.last_success_at)).toBeGreaterThanOrEqual(Date.parse(healed.last_error_at));
  });
});
