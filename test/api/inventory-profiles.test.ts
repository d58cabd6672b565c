import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

const count = async (t: TestKernel, table: string) => Number(((await t.kernel.db.knex(table).count({ n: '*' }).first()) as { n: number }).n);

const tlsProfile = {
  name: 'tls-server',
  description: 'Public TLS servers',
  allowed_key_algorithms: [{ algorithm: 'ECDSA', min_size: 256 }, { algorithm: 'RSA', min_size: 3072 }, { algorithm: 'Ed25519' }],
  max_ttl_seconds: 90 * 86400,
  allowed_ekus: ['serverAuth', 'clientAuth'],
  required_san_patterns: ['^[a-z0-9-]+\\.example\\.com$'],
  // Edits of approval-tier profiles wait for a second person (test/approvals/profile-edit-gate.test.ts).
  requires_approval: false,
};

describe.skipIf(POSTGRES_UNAVAILABLE)('certificate profiles', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel(); });
  afterAll(async () => { await t?.stop(); });

  it('creates, reads, updates and deletes a profile', async () => {
    const created = await t.api.post('/api/v1/profiles', tlsProfile);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ ...tlsProfile, enabled: true });
    expect(created.body.id).toMatch(/^prof-/);
    const id = created.body.id as string;

    const defaults = await t.api.post('/api/v1/profiles', { name: 'minimal' });
    expect(defaults.body).toMatchObject({ allowed_key_algorithms: [], allowed_ekus: ['serverAuth'], required_san_patterns: [], max_ttl_seconds: null, requires_approval: false });

    const updated = await t.api.put(`/api/v1/profiles/${id}`, { max_ttl_seconds: null, allowed_ekus: ['emailProtection'], enabled: false });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ name: 'tls-server', max_ttl_seconds: null, allowed_ekus: ['emailProtection'], enabled: false, allowed_key_algorithms: tlsProfile.allowed_key_algorithms });
    expect((await t.api.get(`/api/v1/profiles/${id}`)).body).toEqual(updated.body);
    expect((await t.api.get('/api/v1/profiles?enabled=false&fields=name')).body.data).toEqual([{ id, name: 'tls-server' }]);

    expect((await t.api.delete(`/api/v1/profiles/${id}`)).status).toBe(204);
    expect((await t.api.get(`/api/v1/profiles/${id}`)).status).toBe(404);
    const audit = await t.api.get(`/api/v1/audit?resource_type=profile&resource_id=${id}&category=lifecycle`);
    expect(audit.body.data.map((e: { action: string }) => e.action).sort()).toEqual(['profile_created', 'profile_deleted', 'profile_updated']);
  });

  it('refuses invalid profiles and writes nothing', async () => {
    const before = await count(t, 'certificate_profiles');
    const bad: [unknown, string][] = [
      [{ name: 'p', allowed_key_algorithms: [{ algorithm: 'RSA', min_size: 1024 }] }, '/allowed_key_algorithms/0/min_size'],
      [{ name: 'p', allowed_key_algorithms: [{ algorithm: 'RSA' }] }, '/allowed_key_algorithms/0/min_size'],
      [{ name: 'p', allowed_key_algorithms: [{ algorithm: 'ECDSA', min_size: 300 }] }, '/allowed_key_algorithms/0/min_size'],
      [{ name: 'p', allowed_key_algorithms: [{ algorithm: 'DSA', min_size: 2048 }] }, '/allowed_key_algorithms/0/algorithm'],
      [{ name: 'p', allowed_key_algorithms: [{ algorithm: 'RSA', min_size: 2048 }, { algorithm: 'RSA', min_size: 4096 }] }, '/allowed_key_algorithms'],
      [{ name: 'p', allowed_ekus: ['serverAuth', 'anyPurpose'] }, '/allowed_ekus/1'],
      [{ name: 'p', allowed_ekus: [] }, '/allowed_ekus'],
      [{ name: 'p', max_ttl_seconds: '3600' }, '/max_ttl_seconds'],
      [{ name: 'p', max_ttl_seconds: 10 }, '/max_ttl_seconds'],
      [{ name: 'p', required_san_patterns: ['^ok$', '([unclosed'] }, '/required_san_patterns/1'],
      [{ name: 'p', owner: 'me' }, '/owner'],
    ];
    for (const [body, path] of bad) {
      const res = await t.api.post('/api/v1/profiles', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
      expect(res.body.error.details.map((d: { path: string }) => d.path), JSON.stringify(body)).toContain(path);
    }
    expect(await count(t, 'certificate_profiles')).toBe(before);

    const p = (await t.api.post('/api/v1/profiles', { name: 'regex-update' })).body;
    expect((await t.api.put(`/api/v1/profiles/${p.id}`, { required_san_patterns: ['*.example.com'] })).status).toBe(400);
    expect((await t.api.get(`/api/v1/profiles/${p.id}`)).body.required_san_patterns).toEqual([]);
  });

  describe('per-profile scope', () => {
    let a: string; let b: string; let c: string;
    beforeAll(async () => {
      a = (await t.api.post('/api/v1/profiles', { id: 'prof-scope-a', name: 'scope-a' })).body.id;
      b = (await t.api.post('/api/v1/profiles', { id: 'prof-scope-b', name: 'scope-b' })).body.id;
      c = (await t.api.post('/api/v1/profiles', { id: 'prof-scope-c', name: 'scope-c' })).body.id;
    });

    it('shows a scoped reader only its profiles, and the others as missing', async () => {
      const reader = t.api.withKey(await t.keyWithRole('viewer', { scope_type: 'profile', scope_id: a }));
      const list = await reader.get('/api/v1/profiles');
      expect(list.status).toBe(200);
      expect(list.body.total).toBe(1);
      expect(list.body.data.map((p: { id: string }) => p.id)).toEqual([a]);
      expect((await reader.get(`/api/v1/profiles/${a}`)).status).toBe(200);
      const hidden = await reader.get(`/api/v1/profiles/${b}`);
      expect(hidden.status).toBe(404);
      // Indistinguishable from a profile that does not exist.
      expect(hidden.body).toEqual({ error: { code: 'not_found', message: `profile ${b} not found` } });
      const missing = await reader.get('/api/v1/profiles/prof-never-existed');
      expect(missing.body).toEqual({ error: { code: 'not_found', message: 'profile prof-never-existed not found' } });
    });

    it('lets a scoped manager edit its profile only, and never create one', async () => {
      const manager = t.api.withKey(await t.keyWithRole('operator', { scope_type: 'profile', scope_id: a }));
      expect((await manager.put(`/api/v1/profiles/${a}`, { description: 'mine' })).status).toBe(200);
      const other = await manager.put(`/api/v1/profiles/${b}`, { description: 'not mine' });
      expect(other.status).toBe(403);
      expect(other.body.error.code).toBe('forbidden');
      expect((await manager.delete(`/api/v1/profiles/${b}`)).status).toBe(403);
      const create = await manager.post('/api/v1/profiles', { name: 'sneaky' });
      expect(create.status).toBe(403);
      expect((await t.api.get(`/api/v1/profiles/${b}`)).body.description).toBe('');
      expect((await t.api.get('/api/v1/profiles?per_page=500')).body.data.some((p: { name: string }) => p.name === 'sneaky')).toBe(false);
    });

    it('sees every profile with a global grant next to a scoped one', async () => {
      const key = await t.keyWithRole('viewer', { scope_type: 'profile', scope_id: c });
      const keys = (await t.api.get('/api/v1/auth/keys?per_page=500')).body.data as { id: string; key_prefix: string }[];
      const keyId = keys.find((k) => key.startsWith(k.key_prefix))!.id;
      expect((await t.api.post(`/api/v1/auth/keys/${keyId}/roles`, { role_id: 'role-viewer' })).status).toBe(201);
      const both = t.api.withKey(key);
      const ids = (await both.get('/api/v1/profiles?per_page=500')).body.data.map((p: { id: string }) => p.id);
      expect(ids).toEqual(expect.arrayContaining([a, b, c]));
    });

    it('refuses to delete a profile while role grants are scoped to it', async () => {
      const refused = await t.api.delete(`/api/v1/profiles/${a}`);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('in_use');
      expect((await t.api.get(`/api/v1/profiles/${a}`)).status).toBe(200);
    });
  });

  it('pages profiles by cursor in name order', async () => {
    const all = (await t.api.get('/api/v1/profiles?per_page=500&sort=name')).body.data.map((p: { name: string }) => p.name);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { data: { name: string }[]; next_cursor: string | null } } = await t.api.get(`/api/v1/profiles?sort=name&page_size=2${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...res.body.data.map((p) => p.name));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(all);
    expect(all.length).toBeGreaterThan(3);
    expect((await t.api.get('/api/v1/profiles?cursor=garbage')).body.error.code).toBe('bad_cursor');
  });
});
