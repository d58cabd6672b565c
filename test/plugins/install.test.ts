import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPluginCatalog } from '../../kernel/src/plugins/catalog.js';
import { InstalledPluginStore } from '../../kernel/src/plugins/install/installed-store.js';
import { VERSION } from '../../kernel/src/version.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { fixturePlugin, tarball } from './install-fixtures.js';
import { FIXTURE_PLUGINS_DIR } from './support.js';

const GZIP = { 'content-type': 'application/gzip' };
const ID = 'acme-widgets-ca';
const TOKEN = 'widgets-token-4f2a9c';

describe.skipIf(POSTGRES_UNAVAILABLE)('installing and managing third-party plugins', () => {
  let t: TestKernel;
  const knex = () => t.kernel.db.knex;
  const upload = (tgz: Buffer, opts: { method?: 'POST' | 'PUT'; id?: string; key?: string | null; headers?: Record<string, string> } = {}) =>
    t.api.request(opts.method ?? 'POST', opts.method === 'PUT' ? `/api/v1/plugins/${opts.id ?? ID}` : '/api/v1/plugins', { rawBody: tgz, headers: opts.headers ?? GZIP, key: opts.key });
  const pluginFolders = () => {
    const root = path.join(t.dataDir, 'plugins');
    if (!fs.existsSync(root)) return [];
    return fs.readdirSync(root).flatMap((id) => fs.readdirSync(path.join(root, id)).map((v) => `${id}/${v}`)).sort();
  };
  const auditActions = async () => ((await knex()('audit_events').where({ resource_type: 'plugin', category: 'lifecycle' }).orderBy('seq').select('action', 'resource_id', 'details')) as { action: string; resource_id: string; details: any }[]);
  const nothingWritten = async () => {
    expect(Number(((await knex()('installed_plugins').count({ n: '*' }).first()) as { n: string }).n)).toBe(0);
    expect(pluginFolders().filter((f) => !f.startsWith('.staging/'))).toEqual([]);
    expect(pluginFolders().filter((f) => f.startsWith('.staging/'))).toEqual([]);
    expect((await auditActions()).length).toBe(0);
  };

  beforeAll(async () => {
    // The fixture folder holds a plugin with id fixture-issuer: an install may not take that id.
    t = await startTestKernel({ env: { CERTCTL_PLUGIN_DIRS: FIXTURE_PLUGINS_DIR } });
  });
  afterAll(async () => { await t?.stop(); });

  describe('refusals leave nothing behind', () => {
    const cases: [string, () => Buffer, RegExp][] = [
      ['a zip file', () => Buffer.from('PK\u0003\u0004not a tgz at all, sorry'), /not a gzip-compressed tar archive/],
      ['a symlink out of the package', () => tarball([{ path: 'package/package.json', body: '{}' }, { path: 'package/dist/plugin.js', type: 'SymbolicLink', linkpath: '/etc/passwd' }]), /SymbolicLink/],
      ['a hard link', () => tarball([{ path: 'package/x', type: 'Link', linkpath: '/etc/shadow' }]), /is a Link/],
      ['a ".." path', () => tarball([{ path: 'package/../../../../tmp/certctl-pwned.js', body: 'x' }]), /"\.\." path segment/],
      ['an absolute path', () => tarball([{ path: '/tmp/certctl-pwned.js', body: 'x' }]), /absolute path/],
      ['a device file', () => tarball([{ path: 'package/zero', type: 'CharacterDevice' }]), /CharacterDevice/],
      ['a gzip bomb', () => tarball([{ path: 'package/zeros', body: Buffer.alloc(65 * 1024 * 1024) }]), /unpacks to more than/],
      ['no package.json', () => tarball([{ path: 'package/dist/plugin.js', body: 'x' }]), /no package\/package\.json/],
      ['a package without a certctl block', () => tarball([{ path: 'package/package.json', body: '{"name":"left-pad","version":"1.3.0"}' }]), /not a certctl plugin/],
      ['a bad manifest (same check as the catalog)', () => fixturePlugin({ manifest: { id: 'Bad_Id', capabilities: { shell: true } } }), /invalid manifest: .*\/id must match pattern.*\/capabilities\/shell is not a manifest field/],
      ['a worker-only plugin', () => fixturePlugin({ manifest: { runtimes: ['worker'], entry: { worker: 'dist/plugin.js' } } }), /only in the isolate runtime/],
      ['an entry that is not in the package', () => fixturePlugin({ manifest: { entry: { isolate: 'dist/missing.js' } } }), /entry\.isolate "dist\/missing\.js" is not in the package/],
      ['a config schema ajv refuses', () => fixturePlugin({ configSchema: { type: 'object', properties: { a: { type: 'string', requried: true } } } }), /configSchema is not a valid strict JSON schema/],
      ['an engine range this kernel is outside of', () => fixturePlugin({ manifest: { engines: { certctl: '>=99.0.0' } } }), /requires certctl >=99\.0\.0/],
      ['a version that is not semver', () => fixturePlugin({ version: 'latest' }), /semver "version"/],
    ];
    for (const [what, make, reason] of cases) {
      it(`refuses ${what}`, async () => {
        const res = await upload(make());
        expect(res.status, res.text).toBe(400);
        expect(res.body.error.code).toBe('validation_failed');
        expect(res.body.error.message).toMatch(reason);
        await nothingWritten();
      });
    }

    it('refuses another content type (415), an empty body, and an id a first-party plugin holds (409)', async () => {
      expect((await upload(fixturePlugin(), { headers: { 'content-type': 'application/json' } })).status).toBe(415);
      const empty = await t.api.request('POST', '/api/v1/plugins', { headers: GZIP });
      expect(empty.status).toBe(400);
      expect(empty.body.error.message).toMatch(/body must be the plugin package/);
      const clash = await upload(fixturePlugin({ id: 'fixture-issuer' }));
      expect(clash.status).toBe(409);
      expect(clash.body.error.message).toMatch(/belongs to the extra plugin/);
      await nothingWritten();
      expect(fs.existsSync('/tmp/certctl-pwned.js')).toBe(false);
    });

    it('reads a large upload only for a caller holding plugin.manage, and caps it', async () => {
      const operator = await t.keyWithRole('operator');
      const denied = await upload(fixturePlugin(), { key: operator });
      expect(denied.status).toBe(403);
      expect(denied.body.error.details[0]).toEqual({ path: 'permission', message: 'plugin.manage' });
      // Above the global 1 MiB API cap but within the upload cap: an anonymous caller is refused before the body is read.
      const big = Buffer.concat([fixturePlugin(), Buffer.alloc(2 * 1024 * 1024)]);
      expect((await upload(big, { key: null })).status).toBe(401);
      const tooBig = await upload(Buffer.alloc(16 * 1024 * 1024 + 1, 0x1f));
      expect(tooBig.status).toBe(413);
      await nothingWritten();
    });
  });

  describe('lifecycle', () => {
    it('installs a package as pending_grant: listed, disabled, unusable for instances', async () => {
      const res = await upload(fixturePlugin());
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({
        id: ID, kind: 'issuer', name: 'Acme Widgets CA', package_name: 'certctl-plugin-acme-widgets', version: '1.0.0', status: 'pending_grant', runtime: 'isolate',
        requested_capabilities: { http: { hosts: ['ca.widgets.example', 'ocsp.widgets.example'] }, kv: true },
        granted_capabilities: {}, installed_by: expect.any(String),
      });
      expect(res.body.status_reason).toMatch(/grant/);
      expect(pluginFolders()).toEqual([expect.stringMatching(new RegExp(`^${ID}/1\\.0\\.0-[0-9a-f]{8}$`))]);
      expect(fs.readFileSync(path.join(t.dataDir, 'plugins', pluginFolders()[0], 'dist/plugin.js'), 'utf8')).toMatch(/fixture plugin/);

      const detail = await t.api.get(`/api/v1/plugins/${ID}`);
      expect(detail.body).toMatchObject({ id: ID, source: 'installed', status: 'disabled', runtime: 'isolate', granted_capabilities: {}, installation: { grant_pending: true, enabled: false } });
      const list = await t.api.get('/api/v1/plugins?per_page=500');
      expect(list.body.data.find((p: { id: string }) => p.id === ID)).toMatchObject({ source: 'installed', status: 'disabled' });

      const issuer = await t.api.post('/api/v1/issuers', { id: 'iss-widgets', name: 'Widgets', type: ID, config: { url: 'https://ca.widgets.example', token: TOKEN } });
      expect(issuer.status).toBe(422);
      expect(issuer.body.error.message).toMatch(/is disabled: waiting for an operator to grant/);
      expect((await upload(fixturePlugin())).status).toBe(409);
    });

    it('refuses to enable before a grant, and refuses grants beyond the request', async () => {
      const enable = await t.api.post(`/api/v1/plugins/${ID}/enable`);
      expect(enable.status).toBe(409);
      expect(enable.body.error.message).toMatch(/waits for its capabilities to be granted/);
      const greedy = await t.api.post(`/api/v1/plugins/${ID}/grant`, { capabilities: { http: { hosts: ['ca.widgets.example', 'metadata.google.internal'] }, exec: { commands: ['sh'] } } });
      expect(greedy.status).toBe(400);
      expect(greedy.body.error.message).toMatch(/does not ask for: exec:sh, http:metadata\.google\.internal/);
      const malformed = await t.api.post(`/api/v1/plugins/${ID}/grant`, { capabilities: { http: { hosts: ['not a host!'] } } });
      expect(malformed.status).toBe(400);
      expect((await t.api.get(`/api/v1/plugins/${ID}`)).body.installation.grant_pending).toBe(true);
      expect((await auditActions()).map((a) => a.action)).toEqual(['plugin_installed']);
    });

    it('grants a subset and enables: the catalog carries exactly the grant', async () => {
      const res = await t.api.post(`/api/v1/plugins/${ID}/grant`, { capabilities: { http: { hosts: ['ca.widgets.example'] } } });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ status: 'enabled', status_reason: null, granted_capabilities: { http: { hosts: ['ca.widgets.example'] } } });
      const entry = t.kernel.plugins.get(ID)!;
      expect(entry).toMatchObject({ status: 'enabled', source: 'installed', runtime: 'isolate', grants: { http: { hosts: ['ca.widgets.example'] } } });
      expect(entry.capabilities).toEqual({ http: { hosts: ['ca.widgets.example', 'ocsp.widgets.example'] }, kv: true });

      const issuer = await t.api.post('/api/v1/issuers', { id: 'iss-widgets', name: 'Widgets', type: ID, config: { url: 'https://ca.widgets.example', token: TOKEN } });
      expect(issuer.status, issuer.text).toBe(201);
      expect(issuer.body).toMatchObject({ status: 'enabled', secret_fields_set: ['token'] });
      expect(issuer.text).not.toContain(TOKEN);
    });

    it('disables and enables: instances follow', async () => {
      const off = await t.api.post(`/api/v1/plugins/${ID}/disable`, { reason: 'CA maintenance window' });
      expect(off.body).toMatchObject({ status: 'disabled', status_reason: 'CA maintenance window' });
      expect((await t.api.get('/api/v1/issuers/iss-widgets')).body).toMatchObject({ status: 'invalid', status_reason: `plugin "${ID}" is disabled: CA maintenance window` });
      const on = await t.api.post(`/api/v1/plugins/${ID}/enable`);
      expect(on.body).toMatchObject({ status: 'enabled', status_reason: null });
      expect((await t.api.get('/api/v1/issuers/iss-widgets')).body.status).toBe('enabled');
      // Enabling what is enabled changes nothing and records nothing.
      expect((await t.api.post(`/api/v1/plugins/${ID}/enable`)).status).toBe(200);
      expect((await auditActions()).map((a) => a.action)).toEqual(['plugin_installed', 'plugin_granted', 'plugin_disabled', 'plugin_enabled']);
    });

    it('upgrades: a stricter schema marks the instance invalid; a new capability request waits for a grant', async () => {
      const before = pluginFolders();
      const strict = fixturePlugin({
        version: '1.1.0',
        configSchema: { type: 'object', additionalProperties: false, required: ['url', 'token', 'profile'], properties: { url: { type: 'string' }, token: { type: 'string', writeOnly: true }, profile: { type: 'string' } } },
      });
      const res = await upload(strict, { method: 'PUT' });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ version: '1.1.0', status: 'enabled', granted_capabilities: { http: { hosts: ['ca.widgets.example'] } } });
      expect(res.body.invalid_instances).toEqual([{ resource: 'issuer', id: 'iss-widgets', name: 'Widgets', reason: expect.stringMatching(/profile/) }]);
      expect((await t.api.get('/api/v1/issuers/iss-widgets')).body).toMatchObject({ status: 'invalid', status_reason: expect.stringMatching(/no longer|does not match the plugin's schema.*profile/) });
      expect(pluginFolders()).toHaveLength(1);
      expect(pluginFolders()).not.toEqual(before);
      // Fixing the config through its (new) schema makes the instance valid again.
      expect((await t.api.put('/api/v1/issuers/iss-widgets', { config: { profile: 'web' } })).body.status).toBe('enabled');

      const greedier = fixturePlugin({ version: '1.2.0', capabilities: { http: { hosts: ['ca.widgets.example', 'ra.widgets.example'] } } });
      const up = await upload(greedier, { method: 'PUT' });
      expect(up.status, up.text).toBe(200);
      expect(up.body).toMatchObject({ version: '1.2.0', status: 'pending_grant', granted_capabilities: { http: { hosts: ['ca.widgets.example'] } } });
      expect(up.body.status_reason).toMatch(/asks for capabilities not granted before: http:ra\.widgets\.example/);
      expect((await t.api.post(`/api/v1/plugins/${ID}/enable`)).status).toBe(409);
      expect((await t.api.get('/api/v1/issuers/iss-widgets')).body.status).toBe('invalid');
      const regrant = await t.api.post(`/api/v1/plugins/${ID}/grant`, { capabilities: { http: { hosts: ['ca.widgets.example', 'ra.widgets.example'] } } });
      expect(regrant.body.status).toBe('enabled');

      expect((await upload(fixturePlugin({ id: 'other-ca', version: '2.0.0' }), { method: 'PUT' })).body.error.message).toMatch(/is plugin "other-ca", not "acme-widgets-ca"/);
      expect((await upload(fixturePlugin({ version: '3.0.0', kind: 'notifier' }), { method: 'PUT' })).body.error.message).toMatch(/cannot change its kind/);
      expect((await upload(fixturePlugin({ id: 'never-installed' }), { method: 'PUT', id: 'never-installed' })).status).toBe(404);
      expect((await upload(fixturePlugin({ id: 'fixture-issuer' }), { method: 'PUT', id: 'fixture-issuer' })).status).toBe(409);
      expect(pluginFolders()).toHaveLength(1);
    });

    it('another replica picks the plugin up from the database, unpacking its archive into its own data directory', async () => {
      const otherData = fs.mkdtempSync(path.join(t.dataDir, '..', 'certctl-replica-'));
      const log = pino({ level: 'silent' });
      const catalog = loadPluginCatalog({ workspacePluginsDir: null, extraDirs: [], kernelVersion: VERSION, log });
      const store = new InstalledPluginStore({ knex: knex(), dataDir: otherData, catalog, kernelVersion: VERSION, log, refreshIntervalMs: 60_000 });
      try {
        await store.start();
        const entry = catalog.get(ID)!;
        expect(entry).toMatchObject({ status: 'enabled', version: '1.2.0', source: 'installed', grants: { http: { hosts: ['ca.widgets.example', 'ra.widgets.example'] } } });
        expect(entry.dir.startsWith(otherData)).toBe(true);
        expect(fs.readFileSync(path.join(entry.dir, 'dist/plugin.js'), 'utf8')).toMatch(/fixture plugin/);
        let changes = 0;
        catalog.onChange(() => { changes += 1; });
        await catalog.refresh();
        expect(changes).toBe(0);
        await t.api.post(`/api/v1/plugins/${ID}/disable`);
        await catalog.refresh();
        expect(changes).toBe(1);
        expect(catalog.get(ID)).toMatchObject({ status: 'disabled', reason: expect.stringMatching(/^disabled by /) });
        await t.api.post(`/api/v1/plugins/${ID}/enable`);

        // A replica on a kernel outside the plugin's engine range keeps it disabled, with the reason.
        const oldCatalog = loadPluginCatalog({ workspacePluginsDir: null, extraDirs: [], kernelVersion: '0.0.1', log });
        const oldStore = new InstalledPluginStore({ knex: knex(), dataDir: otherData, catalog: oldCatalog, kernelVersion: '0.0.1', log, refreshIntervalMs: 60_000 });
        await oldStore.start();
        oldStore.stop();
        expect(oldCatalog.get(ID)).toMatchObject({ status: 'disabled', reason: 'requires certctl >=0.1.0, but this kernel is 0.0.1' });
        expect(oldCatalog.resolve(ID, 'issuer')).toEqual({ reason: expect.stringMatching(/is disabled: requires certctl/) });
      } finally {
        store.stop();
        fs.rmSync(otherData, { recursive: true, force: true });
      }
    });

    it('removes only a plugin no instance uses, and its files', async () => {
      const busy = await t.api.delete(`/api/v1/plugins/${ID}`);
      expect(busy.status).toBe(409);
      expect(busy.body.error).toMatchObject({ code: 'in_use', message: expect.stringMatching(/used by issuers: iss-widgets/) });
      expect((await t.api.delete('/api/v1/issuers/iss-widgets')).status).toBe(204);
      expect((await t.api.delete(`/api/v1/plugins/${ID}`)).status).toBe(204);
      expect((await t.api.get(`/api/v1/plugins/${ID}`)).status).toBe(404);
      expect(t.kernel.plugins.get(ID)).toBeUndefined();
      expect(pluginFolders()).toEqual([]);
      expect((await t.api.delete(`/api/v1/plugins/${ID}`)).status).toBe(404);
      const workspace = await t.api.delete('/api/v1/plugins/fixture-issuer');
      expect(workspace.status).toBe(409);
      expect(workspace.body.error.message).toMatch(/only plugins installed through the API are managed here/);
    });

    it('recorded every change as a lifecycle audit event', async () => {
      const events = await auditActions();
      expect(events.map((e) => e.action)).toEqual([
        'plugin_installed', 'plugin_granted', 'plugin_disabled', 'plugin_enabled', 'plugin_upgraded', 'plugin_upgraded', 'plugin_granted',
        'plugin_disabled', 'plugin_enabled', 'plugin_removed',
      ]);
      expect(events.every((e) => e.resource_id === ID)).toBe(true);
      const upgraded = events.filter((e) => e.action === 'plugin_upgraded').map((e) => (typeof e.details === 'string' ? JSON.parse(e.details) : e.details));
      expect(upgraded[0]).toMatchObject({ from_version: '1.0.0', to_version: '1.1.0', invalid_instances: ['issuer:iss-widgets'], new_capability_requests: [] });
      expect(upgraded[1]).toMatchObject({ from_version: '1.1.0', to_version: '1.2.0', new_capability_requests: ['http:ra.widgets.example'] });
      const granted = events.find((e) => e.action === 'plugin_granted')!;
      expect(typeof granted.details === 'string' ? JSON.parse(granted.details) : granted.details).toMatchObject({ withheld: ['http:ocsp.widgets.example', 'kv'] });
      expect((await t.api.get('/api/v1/audit/verify')).body.valid).toBe(true);
    });
  });
});
