import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { capturingLogger, FIXTURE_PLUGINS_DIR } from '../plugins/support.js';

/** Every secret value the tests send; none may surface in a response, a log line, the jsonb column or the audit trail. */
const SECRET = {
  apiToken: 'issuer-token-7c1f2e9a',
  apiToken2: 'issuer-token-rotated-51d0',
  accountPassword: 'acct-pass-93b1d0c4',
  eab: 'eab-hmac-5a6b7c8d',
  ssh: 'ssh-pass-11aa22bb',
  hook: 'hook-token-77ee88ff',
  rejected: 'rejected-secret-q8w7',
  saltDefault: 'fixture-default-salt-0001',
};
const ALL_SECRETS = Object.values(SECRET);

const expectNoSecret = (text: string, where: string) => {
  for (const s of ALL_SECRETS) expect(text.includes(s), `${where} contains ${s}`).toBe(false);
};

describe.skipIf(POSTGRES_UNAVAILABLE)('plugin instances: issuers, targets, notifiers', () => {
  let t: TestKernel;
  const captured = capturingLogger();
  const db = () => t.kernel.db.knex;
  const rowOf = async (table: string, id: string) => (await db()(table).where({ id }).first()) as Record<string, any>;
  const issuerBody = (id: string, name: string) => ({
    id, name, type: 'fixture-issuer',
    config: { directory_url: 'https://acme.example.test/directory', api_token: SECRET.apiToken, account: { email: 'pki@example.test', password: SECRET.accountPassword } },
  });

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_PLUGIN_DIRS: FIXTURE_PLUGINS_DIR }, start: { log: captured.log } });
  });
  afterAll(async () => { await t?.stop(); });

  it('creates an issuer: secrets are sealed in encrypted_config and left out of config and the response', async () => {
    const res = await t.api.post('/api/v1/issuers', issuerBody('iss-fixture-a', 'Fixture A'));
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      id: 'iss-fixture-a', name: 'Fixture A', type: 'fixture-issuer', enabled: true, status: 'enabled', status_reason: null,
      source: 'database', test_status: 'untested', tested_at: null,
      config: { directory_url: 'https://acme.example.test/directory', timeout_seconds: 30, account: { email: 'pki@example.test' } },
    });
    expect(res.body.config).toEqual({ directory_url: 'https://acme.example.test/directory', timeout_seconds: 30, account: { email: 'pki@example.test' } });
    expect([...res.body.secret_fields_set].sort()).toEqual(['account.password', 'api_token', 'shared_salt']);
    expectNoSecret(res.text, 'create response');

    const row = await rowOf('issuers', 'iss-fixture-a');
    expectNoSecret(JSON.stringify(row.config), 'config column');
    expect(row.config).toEqual(res.body.config);
    expectNoSecret(row.encrypted_config, 'encrypted_config ciphertext');
    expect(t.kernel.cipher.openJson(row.encrypted_config)).toEqual({ api_token: SECRET.apiToken, shared_salt: SECRET.saltDefault, account: { password: SECRET.accountPassword } });

    const one = await t.api.get('/api/v1/issuers/iss-fixture-a');
    expect(one.status).toBe(200);
    expect(one.body).toEqual(res.body);
    const list = await t.api.get('/api/v1/issuers');
    expect(list.status).toBe(200);
    expect(list.body.data.map((i: { id: string }) => i.id)).toContain('iss-fixture-a');
    expectNoSecret(one.text + list.text, 'read responses');

    const events = await db()('audit_events').where({ resource_type: 'issuer', resource_id: 'iss-fixture-a', action: 'issuer_created' });
    expect(events).toHaveLength(1);
  });

  it('PUT merges: omitted secrets are kept, given ones replace, null clears an optional one', async () => {
    const before = await rowOf('issuers', 'iss-fixture-a');
    let res = await t.api.put('/api/v1/issuers/iss-fixture-a', { config: { timeout_seconds: 60 } });
    expect(res.status).toBe(200);
    expect(res.body.config).toEqual({ directory_url: 'https://acme.example.test/directory', timeout_seconds: 60, account: { email: 'pki@example.test' } });
    let row = await rowOf('issuers', 'iss-fixture-a');
    expect(t.kernel.cipher.openJson(row.encrypted_config)).toEqual(t.kernel.cipher.openJson(before.encrypted_config));

    res = await t.api.put('/api/v1/issuers/iss-fixture-a', { config: { api_token: SECRET.apiToken2, eab_hmac_key: SECRET.eab } });
    expect(res.status).toBe(200);
    expect([...res.body.secret_fields_set].sort()).toEqual(['account.password', 'api_token', 'eab_hmac_key', 'shared_salt']);
    row = await rowOf('issuers', 'iss-fixture-a');
    expect(t.kernel.cipher.openJson(row.encrypted_config)).toMatchObject({ api_token: SECRET.apiToken2, eab_hmac_key: SECRET.eab, account: { password: SECRET.accountPassword } });

    res = await t.api.put('/api/v1/issuers/iss-fixture-a', { config: { eab_hmac_key: null, account: { password: null } } });
    expect(res.status).toBe(200);
    expect([...res.body.secret_fields_set].sort()).toEqual(['api_token', 'shared_salt']);
    expect(res.body.config.account).toEqual({ email: 'pki@example.test' });
    row = await rowOf('issuers', 'iss-fixture-a');
    expect(t.kernel.cipher.openJson(row.encrypted_config)).toEqual({ api_token: SECRET.apiToken2, shared_salt: SECRET.saltDefault });

    res = await t.api.put('/api/v1/issuers/iss-fixture-a', { name: 'Fixture A (renamed)', enabled: false });
    expect(res.body).toMatchObject({ name: 'Fixture A (renamed)', enabled: false, status: 'disabled' });
    res = await t.api.put('/api/v1/issuers/iss-fixture-a', { enabled: true });
    expect(res.body).toMatchObject({ enabled: true, status: 'enabled' });
    expectNoSecret(res.text, 'update response');

    const updates = await db()('audit_events').where({ resource_id: 'iss-fixture-a', action: 'issuer_updated' });
    expect(updates).toHaveLength(5);
  });

  it('PUT refuses to clear a required secret, to change the type, and writes nothing then', async () => {
    const before = await rowOf('issuers', 'iss-fixture-a');
    const audits = Number((await db()('audit_events').where({ category: 'lifecycle' }).count({ n: '*' }))[0].n);

    let res = await t.api.put('/api/v1/issuers/iss-fixture-a', { name: 'should not stick', config: { api_token: null } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details).toEqual([{ path: '/config/api_token', message: 'is required' }]);

    res = await t.api.put('/api/v1/issuers/iss-fixture-a', { config: { api_token: SECRET.rejected.slice(0, 5) } });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ path: '/config/api_token', message: 'must NOT have fewer than 8 characters' }]);

    res = await t.api.put('/api/v1/issuers/iss-fixture-a', { type: 'fixture-target' });
    expect(res.status).toBe(400);
    res = await t.api.put('/api/v1/issuers/iss-fixture-a', {});
    expect(res.status).toBe(400);

    const after = await rowOf('issuers', 'iss-fixture-a');
    expect(after).toEqual(before);
    expect(Number((await db()('audit_events').where({ category: 'lifecycle' }).count({ n: '*' }))[0].n)).toBe(audits);
  });

  it('POST with a config that breaks the schema answers 400 with details and writes nothing', async () => {
    const count = async () => Number((await db()('issuers').count({ n: '*' }))[0].n);
    const n = await count();
    const res = await t.api.post('/api/v1/issuers', {
      id: 'iss-never', name: 'Never', type: 'fixture-issuer',
      config: { directory_url: 'not a url', api_token: SECRET.rejected, timeout_seconds: 0, surprise: true },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details).toEqual(expect.arrayContaining([
      { path: '/config/surprise', message: 'unknown field' },
      { path: '/config/directory_url', message: 'must match format "uri"' },
      { path: '/config/timeout_seconds', message: 'must be >= 1' },
    ]));
    expectNoSecret(res.text, 'validation error');

    const missing = await t.api.post('/api/v1/issuers', { name: 'Never', type: 'fixture-issuer', config: { directory_url: 'https://x.example.test' } });
    expect(missing.status).toBe(400);
    expect(missing.body.error.details).toEqual([{ path: '/config/api_token', message: 'is required' }]);

    const noConfig = await t.api.post('/api/v1/issuers', { name: 'Never', type: 'fixture-issuer' });
    expect(noConfig.status).toBe(400);
    const badBody = await t.api.post('/api/v1/issuers', { name: 'Never', type: 'fixture-issuer', config: 'x', colour: 'red' });
    expect(badBody.status).toBe(400);

    expect(await count()).toBe(n);
    expect(await db()('issuers').where({ id: 'iss-never' }).first()).toBeUndefined();
  });

  it('refuses a type that is not an enabled plugin of the right kind with 422', async () => {
    const cases: [string, string, RegExp][] = [
      ['/api/v1/issuers', 'fixture-target', /is a target plugin, not an issuer plugin/],
      ['/api/v1/issuers', 'fixture-future', /is disabled: requires certctl/],
      ['/api/v1/issuers', 'fixture-gateway', /is disabled: invalid manifest/],
      ['/api/v1/issuers', 'no-such-plugin', /no plugin "no-such-plugin" is installed/],
      ['/api/v1/targets', 'fixture-issuer', /not a target plugin/],
      ['/api/v1/notifiers', 'fixture-bad-schema', /is disabled: configSchema is not a valid strict JSON schema/],
      ['/api/v1/notifiers', 'fixture-array-secret', /is disabled/],
    ];
    for (const [path, type, reason] of cases) {
      const res = await t.api.post(path, { name: `wrong ${type}`, type, config: {} });
      expect(res.status, `${path} ${type}`).toBe(422);
      expect(res.body.error.code).toBe('reference_not_found');
      expect(res.body.error.message).toMatch(reason);
    }
    expect(await db()('issuers').where('name', 'like', 'wrong %').first()).toBeUndefined();
  });

  it('refuses duplicate ids and names with 409', async () => {
    const res = await t.api.post('/api/v1/issuers', issuerBody('iss-fixture-a', 'Another name'));
    expect(res.status).toBe(409);
    const byName = await t.api.post('/api/v1/issuers', issuerBody('iss-fixture-other', 'Fixture A (renamed)'));
    expect(byName.status).toBe(409);
  });

  it('targets: validated config, agent reference, secrets sealed', async () => {
    await db()('agents').insert({ id: 'agent-fixture-1', name: 'edge-1' });
    const res = await t.api.post('/api/v1/targets', {
      name: 'edge nginx', type: 'fixture-target', agent_id: 'agent-fixture-1',
      config: { cert_path: '/etc/ssl/certctl/site.pem', ssh_password: SECRET.ssh },
    });
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(/^tgt-[0-9a-f]{16}$/);
    expect(res.body).toMatchObject({ type: 'fixture-target', agent_id: 'agent-fixture-1', status: 'enabled', secret_fields_set: ['ssh_password'] });
    expect(res.body.config).toEqual({ cert_path: '/etc/ssl/certctl/site.pem', reload_command: 'nginx -s reload' });
    expectNoSecret(res.text, 'target response');
    const id = res.body.id as string;
    const row = await rowOf('targets', id);
    expectNoSecret(JSON.stringify(row.config), 'target config column');
    expect(t.kernel.cipher.openJson(row.encrypted_config)).toEqual({ ssh_password: SECRET.ssh });

    const filtered = await t.api.get('/api/v1/targets?agent_id=agent-fixture-1');
    expect(filtered.body.data.map((x: { id: string }) => x.id)).toEqual([id]);

    const noAgent = await t.api.post('/api/v1/targets', { name: 'orphan', type: 'fixture-target', agent_id: 'agent-missing', config: { cert_path: '/x' } });
    expect(noAgent.status).toBe(422);
    expect(noAgent.body.error.message).toMatch(/agent agent-missing not found/);
    const badPath = await t.api.post('/api/v1/targets', { name: 'relative', type: 'fixture-target', config: { cert_path: 'relative.pem' } });
    expect(badPath.status).toBe(400);
    expect(badPath.body.error.details[0].path).toBe('/config/cert_path');

    const detached = await t.api.put(`/api/v1/targets/${id}`, { agent_id: null, config: { reload_command: 'systemctl reload nginx' } });
    expect(detached.status).toBe(200);
    expect(detached.body).toMatchObject({ agent_id: null, config: { cert_path: '/etc/ssl/certctl/site.pem', reload_command: 'systemctl reload nginx' } });
    expect(t.kernel.cipher.openJson((await rowOf('targets', id)).encrypted_config)).toEqual({ ssh_password: SECRET.ssh });
    expect((await t.api.put(`/api/v1/targets/${id}`, { agent_id: 'agent-missing' })).status).toBe(422);
  });

  it('notifiers: create, update keeping the required secret, delete', async () => {
    const res = await t.api.post('/api/v1/notifiers', { name: 'ops hook', type: 'fixture-notifier', config: { url: 'https://hooks.example.test/ops', token: SECRET.hook } });
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(/^ntf-/);
    expect(res.body).toMatchObject({ config: { url: 'https://hooks.example.test/ops' }, secret_fields_set: ['token'], status: 'enabled' });
    const id = res.body.id as string;
    const upd = await t.api.put(`/api/v1/notifiers/${id}`, { config: { channel: '#ops' } });
    expect(upd.status).toBe(200);
    expect(upd.body.config).toEqual({ url: 'https://hooks.example.test/ops', channel: '#ops' });
    expect(t.kernel.cipher.openJson((await rowOf('notifiers', id)).encrypted_config)).toEqual({ token: SECRET.hook });
    expectNoSecret(res.text + upd.text, 'notifier responses');

    expect((await t.api.delete(`/api/v1/notifiers/${id}`)).status).toBe(204);
    expect((await t.api.get(`/api/v1/notifiers/${id}`)).status).toBe(404);
    expect(await db()('audit_events').where({ resource_id: id }).whereIn('action', ['notifier_created', 'notifier_updated', 'notifier_deleted']).orderBy('seq').pluck('action'))
      .toEqual(['notifier_created', 'notifier_updated', 'notifier_deleted']);
  });

  it('reports stored instances whose plugin or config went bad as invalid, and lists still work', async () => {
    const sealed = t.kernel.cipher.sealJson({ api_token: 'stored-token-0000' });
    await db()('issuers').insert([
      { id: 'iss-bad-orphan', name: 'Orphan', type: 'fixture-removed', config: JSON.stringify({}) },
      { id: 'iss-bad-stale', name: 'Stale', type: 'fixture-issuer', config: JSON.stringify({ directory_url: 'https://acme.example.test/d', retired_option: 1 }), encrypted_config: sealed },
      { id: 'iss-bad-future', name: 'Future', type: 'fixture-future', config: JSON.stringify({}) },
      { id: 'iss-bad-garbled', name: 'Garbled', type: 'fixture-issuer', config: JSON.stringify({ directory_url: 'https://acme.example.test/d' }), encrypted_config: 'v1:AAAA:BBBB' },
      // As if written before the plugin marked api_token secret: still never echoed.
      { id: 'iss-legacy-clear', name: 'Legacy', type: 'fixture-issuer', config: JSON.stringify({ directory_url: 'https://acme.example.test/d', api_token: 'legacy-clear-token-1' }) },
    ]);
    const list = await t.api.get('/api/v1/issuers?per_page=100');
    expect(list.status).toBe(200);
    const byId = Object.fromEntries(list.body.data.map((i: { id: string }) => [i.id, i]));
    expect(byId['iss-bad-orphan']).toMatchObject({ status: 'invalid', status_reason: 'no plugin "fixture-removed" is installed' });
    expect(byId['iss-bad-stale']).toMatchObject({ status: 'invalid', status_reason: expect.stringMatching(/stored config does not match the plugin's schema: .*\/retired_option unknown field/), secret_fields_set: ['api_token'] });
    expect(byId['iss-bad-future']).toMatchObject({ status: 'invalid', status_reason: expect.stringMatching(/is disabled: requires certctl/) });
    expect(byId['iss-bad-garbled']).toMatchObject({ status: 'invalid', status_reason: 'stored secrets cannot be decrypted with the configured key' });
    expect(byId['iss-fixture-a']).toMatchObject({ status: 'enabled' });
    expect(byId['iss-legacy-clear']).toMatchObject({ status: 'enabled', config: { directory_url: 'https://acme.example.test/d' } });
    expect(list.text).not.toContain('stored-token-0000');
    expect(list.text).not.toContain('legacy-clear-token-1');
    expect((await t.api.get('/api/v1/issuers/iss-legacy-clear')).text).not.toContain('legacy-clear-token-1');
    await db()('issuers').where({ id: 'iss-legacy-clear' }).delete();

    // Switching off or renaming needs no working plugin; a new config or switching on does.
    expect((await t.api.put('/api/v1/issuers/iss-bad-orphan', { enabled: false })).status).toBe(200);
    expect((await t.api.put('/api/v1/issuers/iss-bad-orphan', { config: { a: 1 } })).status).toBe(422);
    const on = await t.api.put('/api/v1/issuers/iss-bad-stale', { enabled: true });
    expect(on.status).toBe(400);
    expect(on.body.error.details).toEqual([{ path: '/config/retired_option', message: 'unknown field' }]);
    const fixed = await t.api.put('/api/v1/issuers/iss-bad-stale', { config: { retired_option: null } });
    expect(fixed.status).toBe(200);
    expect(fixed.body).toMatchObject({ status: 'enabled', status_reason: null, config: { directory_url: 'https://acme.example.test/d', timeout_seconds: 30 } });
    expect((await t.api.delete('/api/v1/issuers/iss-bad-orphan')).status).toBe(204);
  });

  it('an issuer-scoped grant sees and edits only its own issuer', async () => {
    const b = await t.api.post('/api/v1/issuers', issuerBody('iss-fixture-b', 'Fixture B'));
    expect(b.status).toBe(201);
    const viewerA = await t.keyWithRole('viewer', { scope_type: 'issuer', scope_id: 'iss-fixture-a' });
    const list = await t.api.get('/api/v1/issuers', { key: viewerA });
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(1);
    expect(list.body.data.map((i: { id: string }) => i.id)).toEqual(['iss-fixture-a']);
    expect((await t.api.get('/api/v1/issuers/iss-fixture-a', { key: viewerA })).status).toBe(200);
    expect((await t.api.get('/api/v1/issuers/iss-fixture-b', { key: viewerA })).status).toBe(404);
    expect((await t.api.put('/api/v1/issuers/iss-fixture-a', { enabled: false }, { key: viewerA })).status).toBe(403);
    // target.* and notifier.* cannot be narrowed to an issuer: such a grant shows nothing.
    expect((await t.api.get('/api/v1/targets', { key: viewerA })).status).toBe(403);

    const operatorA = await t.keyWithRole('operator', { scope_type: 'issuer', scope_id: 'iss-fixture-a' });
    const edit = await t.api.put('/api/v1/issuers/iss-fixture-a', { config: { timeout_seconds: 45 } }, { key: operatorA });
    expect(edit.status).toBe(200);
    expect(edit.body.config.timeout_seconds).toBe(45);
    expect((await t.api.put('/api/v1/issuers/iss-fixture-b', { enabled: false }, { key: operatorA })).status).toBe(404);
    expect((await t.api.delete('/api/v1/issuers/iss-fixture-b', { key: operatorA })).status).toBe(404);
    expect((await t.api.post('/api/v1/issuers', issuerBody('iss-fixture-c', 'Fixture C'), { key: operatorA })).status).toBe(403);

    const viewer = await t.keyWithRole('viewer');
    expect((await t.api.get('/api/v1/issuers', { key: viewer })).body.total).toBeGreaterThanOrEqual(2);
    expect((await t.api.post('/api/v1/notifiers', { name: 'x', type: 'fixture-notifier', config: {} }, { key: viewer })).status).toBe(403);
  });

  it('no secret reached a log line, the audit trail or any config column', async () => {
    const logText = captured.text();
    expect(logText).toContain('/api/v1/issuers');
    expect(logText).toContain('"msg":"request"');
    expectNoSecret(logText, 'log output');
    const audit = await db()('audit_events').select('*');
    expect(audit.length).toBeGreaterThan(10);
    expectNoSecret(JSON.stringify(audit), 'audit trail');
    for (const table of ['issuers', 'targets', 'notifiers']) {
      const rows = await db()(table).select('config', 'encrypted_config');
      expectNoSecret(JSON.stringify(rows), `${table} table`);
    }
  });
});
