import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

const TOKEN = 'bootstrap-token-0123456789abcdef';

describe.skipIf(POSTGRES_UNAVAILABLE)('bootstrap token', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel({ env: { CERTCTL_BOOTSTRAP_TOKEN: TOKEN } }); });
  afterAll(async () => { await t?.stop(); });

  it('creates no initial key when a bootstrap token is configured', async () => {
    expect(t.kernel.initialAdminKey).toBeUndefined();
    expect((await t.api.get('/api/v1/auth/info', { key: null })).body).toEqual({ auth_type: 'api-key', bootstrap_available: true });
  });

  it('refuses a wrong token, mints one admin with the right one, then closes', async () => {
    const wrong = await t.api.post('/api/v1/auth/bootstrap', { token: 'bootstrap-token-0123456789abcdeX' }, { key: null });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('bootstrap_token_invalid');
    const ok = await t.api.post('/api/v1/auth/bootstrap', { token: TOKEN, name: 'day-zero' }, { key: null });
    expect(ok.status).toBe(201);
    expect(ok.body.key).toMatch(/^cctl_/);
    const me = await t.api.get('/api/v1/auth/me', { key: ok.body.key });
    expect(me.body.roles[0].role).toBe('admin');
    const again = await t.api.post('/api/v1/auth/bootstrap', { token: TOKEN }, { key: null });
    expect(again.status).toBe(410);
    expect(again.body.error.code).toBe('bootstrap_closed');
    expect((await t.api.get('/api/v1/auth/bootstrap', { key: null })).body).toEqual({ enabled: true, available: false });
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('API keys and roles', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel(); });
  afterAll(async () => { await t?.stop(); });

  it('stores only a SHA-256 of the key and never returns it again', async () => {
    const created = await t.api.post('/api/v1/auth/keys', { name: 'ci-bot', roles: [{ role_id: 'role-viewer' }] });
    expect(created.status).toBe(201);
    const row = await t.kernel.db.knex('api_keys').where({ id: created.body.id }).first();
    expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(created.body.key);
    const listed = await t.api.get('/api/v1/auth/keys');
    expect(listed.text).not.toContain(created.body.key);
    expect(listed.text).not.toContain(row.key_hash);
  });

  it('a revoked or expired key is refused; a malformed header is a 401', async () => {
    const k = await t.api.post('/api/v1/auth/keys', { name: 'temp' });
    expect((await t.api.get('/api/v1/auth/me', { key: k.body.key })).status).toBe(200);
    expect((await t.api.delete(`/api/v1/auth/keys/${k.body.id}`)).status).toBe(204);
    expect((await t.api.get('/api/v1/auth/me', { key: k.body.key })).status).toBe(401);
    const exp = await t.api.post('/api/v1/auth/keys', { name: 'short', expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    expect((await t.api.get('/api/v1/auth/me', { key: exp.body.key })).status).toBe(200);
    // Let the expiry pass without waiting for it.
    await t.kernel.db.knex('api_keys').where({ id: exp.body.id }).update({ expires_at: new Date(Date.now() - 1000) });
    expect((await t.api.get('/api/v1/auth/me', { key: exp.body.key })).status).toBe(401);
    expect((await t.api.get('/api/v1/auth/me', { key: null, headers: { authorization: 'Basic abc' } })).status).toBe(401);
    expect((await t.api.get('/health', { key: 'cctl_wrong' })).status).toBe(401);
  });

  it('granting needs auth.role.assign: an operator cannot give itself admin', async () => {
    const operator = await t.keyWithRole('operator');
    const me = await t.api.get('/api/v1/auth/me', { key: operator });
    const grant = await t.api.post(`/api/v1/auth/keys/${me.body.key_id}/roles`, { role_id: 'role-admin' }, { key: operator });
    expect(grant.status).toBe(403);
    const viaCreate = await t.api.post('/api/v1/auth/keys', { name: 'x', roles: [{ role_id: 'role-admin' }] }, { key: operator });
    expect(viaCreate.status).toBe(403);
  });

  it('a key manager holding auth.role.assign cannot grant a role with permissions it does not hold (no self-made admin)', async () => {
    const mgrRole = await t.api.post('/api/v1/auth/roles', { name: 'key-manager', permissions: ['auth.role.assign', 'auth.key.list', 'cert.read'] });
    const mgr = await t.api.post('/api/v1/auth/keys', { name: 'key-manager', roles: [{ role_id: mgrRole.body.id }] });
    const self = await t.api.post(`/api/v1/auth/keys/${mgr.body.id}/roles`, { role_id: 'role-admin' }, { key: mgr.body.key });
    expect(self.status).toBe(403);
    expect(self.body.error.message).toMatch(/cannot hand out permissions/);
    expect((await t.api.get('/api/v1/auth/me', { key: mgr.body.key })).body.roles.map((r: any) => r.role)).toEqual(['key-manager']);
    // A role within what the manager holds can be granted.
    const readers = await t.api.post('/api/v1/auth/roles', { name: 'cert-readers', permissions: ['cert.read'] });
    const other = await t.api.post('/api/v1/auth/keys', { name: 'reader' });
    expect((await t.api.post(`/api/v1/auth/keys/${other.body.id}/roles`, { role_id: readers.body.id }, { key: mgr.body.key })).status).toBe(201);
  });

  it('a role editor cannot hand out permissions they do not hold', async () => {
    const editor = await t.api.post('/api/v1/auth/roles', { name: 'role-editor', permissions: ['auth.role.create', 'auth.role.edit', 'cert.read'] });
    expect(editor.status).toBe(201);
    const k = await t.api.post('/api/v1/auth/keys', { name: 'editor', roles: [{ role_id: editor.body.id }] });
    const sneaky = await t.api.post('/api/v1/auth/roles', { name: 'sneaky', permissions: ['cert.read', 'auth.role.assign'] }, { key: k.body.key });
    expect(sneaky.status).toBe(403);
    const fine = await t.api.post('/api/v1/auth/roles', { name: 'readers', permissions: ['cert.read'] }, { key: k.body.key });
    expect(fine.status).toBe(201);
    const add = await t.api.post(`/api/v1/auth/roles/${fine.body.id}/permissions`, { permission: 'audit.export' }, { key: k.body.key });
    expect(add.status).toBe(403);
  });

  it('built-in roles cannot be changed or deleted; custom ones in use cannot be deleted', async () => {
    expect((await t.api.put('/api/v1/auth/roles/role-viewer', { permissions: ['cert.read'] })).status).toBe(409);
    expect((await t.api.delete('/api/v1/auth/roles/role-auditor')).status).toBe(409);
    const role = await t.api.post('/api/v1/auth/roles', { name: 'temp-role', permissions: ['cert.read'] });
    const k = await t.api.post('/api/v1/auth/keys', { name: 'holder', roles: [{ role_id: role.body.id }] });
    expect((await t.api.delete(`/api/v1/auth/roles/${role.body.id}`)).body.error.code).toBe('in_use');
    const grantId = k.body.roles[0].id;
    expect((await t.api.delete(`/api/v1/auth/keys/${k.body.id}/roles/${grantId}`)).status).toBe(204);
    expect((await t.api.delete(`/api/v1/auth/roles/${role.body.id}`)).status).toBe(204);
  });

  it('the last admin cannot be revoked or stripped', async () => {
    const me = await t.api.get('/api/v1/auth/me');
    const grant = (await t.api.get(`/api/v1/auth/keys/${me.body.key_id}`)).body.roles.find((r: any) => r.role_id === 'role-admin');
    expect((await t.api.delete(`/api/v1/auth/keys/${me.body.key_id}/roles/${grant.id}`)).status).toBe(409);
    expect((await t.api.delete(`/api/v1/auth/keys/${me.body.key_id}`)).status).toBe(409);
    // With a second admin, the first can go.
    const second = await t.api.post('/api/v1/auth/keys', { name: 'admin-2', roles: [{ role_id: 'role-admin' }] });
    expect((await t.api.delete(`/api/v1/auth/keys/${me.body.key_id}`)).status).toBe(204);
    expect((await t.api.get('/api/v1/auth/me', { key: second.body.key })).status).toBe(200);
  });

  it('records auth changes in the audit trail', async () => {
    await t.kernel.audit.flush();
    const admin2 = (await t.kernel.db.knex('api_keys').where({ name: 'admin-2' }).first()).id;
    const key = (await t.kernel.identity.createKey(await import('../../kernel/src/auth/api-keys.js').then((m) => m.loadPrincipal(t.kernel.db.knex, { id: admin2, name: 'admin-2', actor_type: 'user' })), { name: 'audit-probe' }));
    const res = await t.kernel.db.knex('audit_events').where({ action: 'api_key_created', resource_id: key.id }).first();
    expect(res).toMatchObject({ category: 'auth', actor: admin2 });
    const actions = (await t.kernel.db.knex('audit_events').where({ category: 'auth' }).distinct('action')).map((r: any) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['initial_admin_created', 'api_key_created', 'api_key_revoked', 'role_assigned', 'role_revoked', 'role_created', 'role_deleted']));
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('scoped grants', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel(); });
  afterAll(async () => { await t?.stop(); });

  it('a role granted on one profile confers only the permissions that can be scoped to a profile', async () => {
    const profile = await t.api.post('/api/v1/profiles', { name: 'scoped-profile' });
    expect(profile.status).toBe(201);
    const k = await t.api.post('/api/v1/auth/keys', { name: 'scoped-operator', roles: [{ role_id: 'role-operator', scope_type: 'profile', scope_id: profile.body.id }] });
    const me = await t.api.get('/api/v1/auth/me', { key: k.body.key });
    const perms: string[] = me.body.effective_permissions;
    expect(perms).toEqual(expect.arrayContaining(['cert.read', 'cert.create', 'profile.read', 'job.read']));
    // Global-only permissions of the operator role are not granted through a profile scope.
    for (const p of ['target.manage', 'target.read', 'issuer.create', 'owner.manage', 'audit.read', 'policy.manage']) expect(perms).not.toContain(p);
    expect((await t.api.get('/api/v1/targets', { key: k.body.key })).status).toBe(403);
    expect((await t.api.get('/api/v1/audit', { key: k.body.key })).status).toBe(403);
    expect(me.body.scoped_grants.every((g: any) => g.scope_type === 'profile' && g.scope_id === profile.body.id)).toBe(true);
  });

  it('a scope that does not exist is refused', async () => {
    const k = await t.api.post('/api/v1/auth/keys', { name: 'bad-scope', roles: [{ role_id: 'role-viewer', scope_type: 'issuer', scope_id: 'iss-nope' }] });
    expect(k.status).toBe(422);
    expect((await t.kernel.db.knex('api_keys').where({ name: 'bad-scope' })).length).toBe(0);
  });
});
