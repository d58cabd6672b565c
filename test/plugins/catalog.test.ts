import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_SCHEMA, PLUGIN_KINDS } from '@certctl/sdk';
import { loadPluginCatalog, type PluginCatalog } from '../../kernel/src/plugins/catalog.js';
import { misplacedSecretMarkers, publicConfigSchema } from '../../kernel/src/plugins/config-schema.js';
import { checkManifest } from '../../kernel/src/plugins/manifest-check.js';
import { VERSION } from '../../kernel/src/version.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { capturingLogger, FIXTURE_PLUGINS_DIR } from './support.js';

const silent = pino({ level: 'silent' });
const load = (extraDirs = [FIXTURE_PLUGINS_DIR], kernelVersion = VERSION) =>
  loadPluginCatalog({ workspacePluginsDir: null, extraDirs, kernelVersion, log: silent });

/** Every refused fixture, by directory, with what its reason must say. */
const REFUSED: Record<string, { id: string; reason: RegExp }> = {
  'broken-bad-id': { id: 'Bad_Id', reason: /\/id must match pattern/ },
  'broken-unknown-kind': { id: 'fixture-gateway', reason: /\/kind must be one of issuer, target, notifier, protocol, discovery/ },
  'broken-api-version': { id: 'fixture-old-api', reason: /apiVersion "certctl\.plugin\/v0" is not supported/ },
  'broken-config-schema': { id: 'fixture-bad-schema', reason: /configSchema is not a valid strict JSON schema: .*unknown keyword: "requried"/ },
  'broken-engine': { id: 'fixture-future', reason: /requires certctl >=99\.0\.0, but this kernel is / },
  'broken-duplicate-id': { id: 'fixture-issuer', reason: /duplicate plugin id "fixture-issuer": already provided by Fixture CA 1\.0\.0/ },
  'broken-secret-in-array': { id: 'fixture-array-secret', reason: /secrets outside plain object properties \(\/properties\/tokens\/items\)/ },
  'broken-missing-entry': { id: 'fixture-no-isolate-entry', reason: /\/entry\/isolate is required/ },
  'broken-package-json': { id: 'broken-package-json', reason: /package\.json cannot be read/ },
};

describe('plugin catalog: discovery and manifest checks (no plugin code runs)', () => {
  let catalog: PluginCatalog;
  beforeAll(() => { catalog = load(); });
  const byDir = (dir: string) => catalog.list().find((p) => path.basename(p.dir) === dir);

  it('enables the three valid fixtures with their manifest facts', () => {
    const issuer = catalog.get('fixture-issuer')!;
    expect(issuer).toMatchObject({
      kind: 'issuer', status: 'enabled', reason: null, name: 'Fixture CA', version: '1.0.0', description: 'An issuer used by the tests',
      features: ['renew', 'revoke'], capabilities: { http: { hosts: ['acme.example.test', '*.ca.example.test:8443'] }, kv: true }, source: 'extra',
    });
    expect(path.basename(issuer.dir)).toBe('basic-issuer');
    expect(issuer.secretFields).toEqual(['api_token', 'shared_salt', 'eab_hmac_key', 'account.password']);
    expect(catalog.get('fixture-target')).toMatchObject({ kind: 'target', status: 'enabled', capabilities: { fs: { paths: ['/etc/ssl/certctl'] }, exec: { commands: ['nginx'] } } });
    expect(catalog.get('fixture-notifier')).toMatchObject({ kind: 'notifier', status: 'enabled', secretFields: ['token'] });
  });

  it('lists each broken plugin as disabled with the reason it was refused', () => {
    for (const [dir, want] of Object.entries(REFUSED)) {
      const p = byDir(dir);
      expect(p, dir).toBeDefined();
      expect(p!.id, dir).toBe(want.id);
      expect(p!.status, dir).toBe('disabled');
      expect(p!.reason, dir).toMatch(want.reason);
      expect(p!.validateConfig, dir).toBeNull();
    }
    expect(catalog.list().filter((p) => p.status === 'enabled').map((p) => p.id).sort()).toEqual(['fixture-issuer', 'fixture-notifier', 'fixture-target']);
  });

  it('ignores packages without a certctl block and keeps the first owner of a duplicate id', () => {
    expect(catalog.list().some((p) => path.basename(p.dir) === 'not-a-plugin')).toBe(false);
    expect(path.basename(catalog.get('fixture-issuer')!.dir)).toBe('basic-issuer');
    expect(catalog.list().filter((p) => p.id === 'fixture-issuer')).toHaveLength(2);
  });

  it('keeps the kind of a plugin refused only for its engine range, and accepts it on a kernel in range', () => {
    expect(byDir('broken-engine')).toMatchObject({ kind: 'issuer', status: 'disabled' });
    expect(load([FIXTURE_PLUGINS_DIR], '99.1.0').get('fixture-future')).toMatchObject({ status: 'enabled', reason: null });
    expect(load([FIXTURE_PLUGINS_DIR], '99.1.0').get('fixture-issuer')).toMatchObject({ status: 'enabled' });
  });

  it('compiles each config schema once, with defaults and formats', () => {
    const validate = catalog.get('fixture-issuer')!.validateConfig!;
    const config: Record<string, unknown> = { directory_url: 'https://acme.example.test/dir', api_token: 'tok-12345678' };
    expect(validate(config)).toBe(true);
    expect(config).toMatchObject({ timeout_seconds: 30, shared_salt: 'fixture-default-salt-0001' });
    expect(validate({ directory_url: 'not a url', api_token: 'x' })).toBe(false);
    expect(validate.errors!.map((e) => e.instancePath).sort()).toEqual(['/api_token', '/directory_url']);
  });

  it('resolves a type only to an enabled plugin of the asked kind', () => {
    expect('plugin' in catalog.resolve('fixture-issuer', 'issuer')).toBe(true);
    expect(catalog.resolve('fixture-target', 'issuer')).toEqual({ reason: 'plugin "fixture-target" is a target plugin, not an issuer plugin' });
    expect(catalog.resolve('fixture-future', 'issuer')).toEqual({ reason: expect.stringMatching(/^plugin "fixture-future" is disabled: requires certctl/) });
    expect(catalog.resolve('no-such-plugin', 'notifier')).toEqual({ reason: 'no plugin "no-such-plugin" is installed' });
  });

  it('takes a plugin directory given directly, and skips a missing one without failing', () => {
    const { log, lines } = capturingLogger();
    const c = loadPluginCatalog({ workspacePluginsDir: null, extraDirs: [path.join(FIXTURE_PLUGINS_DIR, 'basic-target'), path.join(FIXTURE_PLUGINS_DIR, 'does-not-exist')], kernelVersion: VERSION, log });
    expect(c.list().map((p) => p.id)).toEqual(['fixture-target']);
    expect(lines().some((l) => l.includes('does-not-exist') && l.includes('not a directory'))).toBe(true);
  });

  it('does not list the same package twice when two configured dirs reach it', () => {
    const c = load([FIXTURE_PLUGINS_DIR, path.join(FIXTURE_PLUGINS_DIR, 'basic-notifier')]);
    expect(c.list().filter((p) => p.id === 'fixture-notifier')).toHaveLength(1);
  });
});

describe('manifest schema and config-schema helpers', () => {
  const good = {
    id: 'local-ca', kind: 'issuer', apiVersion: 'certctl.plugin/v1', engines: { certctl: '>=0.1.0' },
    runtimes: ['worker'], entry: { worker: 'dist/index.js' }, configSchema: { type: 'object' },
  };

  it('accepts a minimal manifest and names every problem of a bad one', () => {
    expect(checkManifest(good, '0.1.0')).toMatchObject({ ok: true, manifest: good });
    const bad = checkManifest({ ...good, entry: { worker: '../escape.js' }, capabilities: { http: { hosts: ['ftp://x/path'] }, shell: true }, features: ['Renew'] }, '0.1.0');
    expect(bad.ok).toBe(false);
    const reason = (bad as { reason: string }).reason;
    expect(reason).toMatch(/\/entry\/worker must match pattern/);
    expect(reason).toMatch(/\/capabilities\/shell is not a manifest field/);
    expect(reason).toMatch(/\/capabilities\/http\/hosts\/0 must match pattern/);
    expect(reason).toMatch(/\/features\/0 must match pattern/);
    expect(checkManifest('not an object', '0.1.0')).toEqual({ ok: false, reason: 'the certctl block of package.json must be an object' });
    expect(checkManifest({ ...good, engines: { certctl: 'soon' } }, '0.1.0')).toMatchObject({ ok: false, reason: 'engines.certctl "soon" is not a semver range' });
    expect(checkManifest({ ...good, configSchema: { type: 'array' } }, '0.1.0')).toMatchObject({ ok: false, reason: expect.stringMatching(/\/configSchema\/type must be "object"/) });
  });

  it('the SDK exports the schema and the kinds it allows', () => {
    expect(MANIFEST_SCHEMA.properties.kind.enum).toEqual([...PLUGIN_KINDS]);
    expect(MANIFEST_SCHEMA.properties.apiVersion.const).toBe('certctl.plugin/v1');
  });

  it('finds secret markers that splitting by properties would miss', () => {
    expect(misplacedSecretMarkers({ type: 'object', properties: { a: { type: 'string', writeOnly: true }, b: { type: 'object', properties: { c: { type: 'string', 'x-secret': true } } } } })).toEqual([]);
    expect(misplacedSecretMarkers({
      type: 'object',
      properties: { list: { type: 'array', items: { type: 'string', 'x-secret': true } } },
      anyOf: [{ properties: { k: { type: 'string', writeOnly: true } } }],
      $defs: { s: { type: 'string', writeOnly: true } },
    })).toEqual(['/properties/list/items', '/anyOf/0/properties/k', '/$defs/s']);
  });

  it('drops defaults and examples from secret fields only', () => {
    const schema = {
      type: 'object',
      properties: {
        port: { type: 'integer', default: 443 },
        key: { type: 'string', writeOnly: true, default: 'hunter2', examples: ['hunter3'] },
        nested: { type: 'object', properties: { pin: { type: 'string', 'x-secret': true, default: '0000' } } },
      },
    };
    const pub = publicConfigSchema(schema);
    expect(JSON.stringify(pub)).not.toMatch(/hunter|0000/);
    expect(pub).toEqual({
      type: 'object',
      properties: {
        port: { type: 'integer', default: 443 },
        key: { type: 'string', writeOnly: true },
        nested: { type: 'object', properties: { pin: { type: 'string', 'x-secret': true } } },
      },
    });
    expect(schema.properties.key.default).toBe('hunter2');
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('plugin catalog at boot and over the API', () => {
  let t: TestKernel;
  const captured = capturingLogger();
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_PLUGIN_DIRS: FIXTURE_PLUGINS_DIR }, start: { log: captured.log } });
  });
  afterAll(async () => { await t?.stop(); });

  it('boots despite the broken plugins and warns once per disabled plugin', async () => {
    expect((await t.api.get('/ready', { key: null })).status).toBe(200);
    // Only the fixtures: the workspace's own plugins are discovered too.
    const warnings = captured.lines().map((l) => JSON.parse(l) as { level: number; msg: string; plugin?: string; reason?: string; dir?: string })
      .filter((l) => l.msg === 'plugin disabled' && l.dir?.startsWith(FIXTURE_PLUGINS_DIR));
    expect(warnings).toHaveLength(Object.keys(REFUSED).length);
    expect(warnings.every((w) => w.level === 40 && w.reason)).toBe(true);
    expect(warnings.map((w) => w.plugin).sort()).toEqual(Object.values(REFUSED).map((r) => r.id).sort());
  });

  it('GET /api/v1/plugins lists enabled and disabled plugins with reasons', async () => {
    const res = await t.api.get('/api/v1/plugins?per_page=500');
    expect(res.status).toBe(200);
    const mine = (res.body.data as { id: string; status: string; reason: string | null }[]);
    expect(res.body.total).toBe(mine.length);
    expect(mine.find((p) => p.id === 'fixture-issuer' && p.status === 'enabled')).toMatchObject({
      kind: 'issuer', name: 'Fixture CA', version: '1.0.0', reason: null, features: ['renew', 'revoke'], capabilities: { kv: true },
    });
    for (const want of Object.values(REFUSED)) {
      expect(mine.some((p) => p.id === want.id && p.status === 'disabled' && want.reason.test(p.reason ?? '')), want.id).toBe(true);
    }
  });

  it('filters, sorts and pages the catalog like any list', async () => {
    const issuers = await t.api.get('/api/v1/plugins?kind=issuer&status=enabled');
    expect(issuers.body.data.map((p: { id: string }) => p.id)).toContain('fixture-issuer');
    expect(issuers.body.data.every((p: { kind: string; status: string }) => p.kind === 'issuer' && p.status === 'enabled')).toBe(true);

    const all = await t.api.get('/api/v1/plugins?per_page=500&sort=-id&fields=id,status');
    expect(Object.keys(all.body.data[0]).sort()).toEqual(['id', 'status']);
    const ids = all.body.data.map((p: { id: string }) => p.id);
    expect(ids).toEqual([...ids].sort((a: string, b: string) => (a < b ? 1 : a > b ? -1 : 0)));

    const seen: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page = await t.api.get(`/api/v1/plugins?page_size=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.data.map((p: { id: string }) => p.id));
      cursor = page.body.next_cursor;
    }
    const everything = await t.api.get('/api/v1/plugins?per_page=500');
    expect(seen).toEqual(everything.body.data.map((p: { id: string }) => p.id));

    expect((await t.api.get('/api/v1/plugins?kind=gateway')).status).toBe(400);
  });

  it('GET /api/v1/plugins/:id and its schema; secret defaults never leave the server', async () => {
    const one = await t.api.get('/api/v1/plugins/fixture-issuer');
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ id: 'fixture-issuer', status: 'enabled', api_version: 'certctl.plugin/v1', runtimes: ['worker'], secret_fields: ['api_token', 'shared_salt', 'eab_hmac_key', 'account.password'] });

    const schema = await t.api.get('/api/v1/plugins/fixture-issuer/schema');
    expect(schema.status).toBe(200);
    expect(schema.text).not.toContain('fixture-default-salt-0001');
    expect(schema.body.config_schema.properties.shared_salt).toEqual({ type: 'string', 'x-secret': true });
    expect(schema.body.config_schema.properties.timeout_seconds.default).toBe(30);
    expect(schema.body.ui_schema).toEqual({ api_token: { 'ui:widget': 'password' }, 'ui:order': ['directory_url', '*'] });

    expect((await t.api.get('/api/v1/plugins/fixture-future/schema')).body.status).toBe('disabled');
    const broken = await t.api.get('/api/v1/plugins/fixture-gateway/schema');
    expect(broken.status).toBe(409);
    expect(broken.body.error.code).toBe('invalid_state');
    expect((await t.api.get('/api/v1/plugins/nope')).status).toBe(404);
    expect((await t.api.get('/api/v1/plugins/nope/schema')).status).toBe(404);
  });

  it('the OpenAPI document describes the plugin and instance routes', async () => {
    const doc = await t.api.get('/api/v1/openapi.json', { key: null });
    expect(doc.status).toBe(200);
    for (const p of ['/api/v1/plugins', '/api/v1/plugins/{id}/schema', '/api/v1/issuers', '/api/v1/targets/{id}', '/api/v1/notifiers']) {
      expect(Object.keys(doc.body.paths), p).toContain(p);
    }
  });

  it('needs plugin.read', async () => {
    const viewer = await t.keyWithRole('viewer');
    expect((await t.api.get('/api/v1/plugins', { key: viewer })).status).toBe(200);
    const auditor = await t.keyWithRole('auditor');
    expect((await t.api.get('/api/v1/plugins', { key: auditor })).status).toBe(403);
    expect((await t.api.get('/api/v1/plugins/fixture-issuer/schema', { key: auditor })).status).toBe(403);
    expect((await t.api.get('/api/v1/plugins', { key: null })).status).toBe(401);
  });
});
