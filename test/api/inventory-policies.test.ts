import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

const count = async (t: TestKernel, table: string) => Number(((await t.kernel.db.knex(table).count({ n: '*' }).first()) as { n: number }).n);

describe.skipIf(POSTGRES_UNAVAILABLE)('policies, violations, renewal policies and notifications', () => {
  let t: TestKernel;
  let groupId: string;
  beforeAll(async () => {
    t = await startTestKernel();
    groupId = (await t.api.post('/api/v1/agent-groups', { name: 'edge', match_os: 'linux' })).body.id;
    // Certificates belong to the lifecycle module; a bare row is enough to hang violations and notifications on.
    await t.kernel.db.knex('managed_certificates').insert([
      { id: 'mc-inv-api', name: 'api', common_name: 'api.example.com' },
      { id: 'mc-inv-www', name: 'www', common_name: 'www.example.com' },
    ]);
  });
  afterAll(async () => { await t?.stop(); });

  describe('policies', () => {
    it('creates each policy type with its own config shape', async () => {
      const valid: [string, Record<string, unknown>][] = [
        ['key_algorithm', { allowed_algorithms: ['ECDSA', 'Ed25519'] }],
        ['min_key_size', { rsa_min_bits: 3072 }],
        ['max_lifetime', { max_days: 90 }],
        ['san_pattern', { patterns: ['\\.example\\.com$'] }],
        ['issuer_restriction', { allowed_issuer_ids: ['iss-local'] }],
      ];
      for (const [type, config] of valid) {
        const res = await t.api.post('/api/v1/policies', { name: `valid ${type}`, type, config, severity: 'Error', agent_group_id: groupId });
        expect(res.status, type).toBe(201);
        expect(res.body).toMatchObject({ type, config, severity: 'Error', enabled: true, agent_group_id: groupId });
      }
      const listed = await t.api.get('/api/v1/policies?type=max_lifetime,min_key_size&sort=type&fields=type,config');
      expect(listed.body.data.map((p: { type: string }) => p.type)).toEqual(['max_lifetime', 'min_key_size']);
      expect(listed.body.data[0]).toEqual({ id: expect.any(String), type: 'max_lifetime', config: { max_days: 90 } });
    });

    it('refuses a config that does not fit the type, and other bad input, writing nothing', async () => {
      const before = await count(t, 'policies');
      const bad: [Record<string, unknown>, number][] = [
        [{ type: 'max_lifetime', config: { allowed_algorithms: ['RSA'] } }, 400],
        [{ type: 'max_lifetime', config: { max_days: '90' } }, 400],
        [{ type: 'max_lifetime', config: {} }, 400],
        [{ type: 'min_key_size', config: {} }, 400],
        [{ type: 'min_key_size', config: { ecdsa_min_bits: 255 } }, 400],
        [{ type: 'key_algorithm', config: { allowed_algorithms: [] } }, 400],
        [{ type: 'san_pattern', config: { patterns: ['(broken'] } }, 400],
        [{ type: 'issuer_restriction', config: { allowed_issuer_ids: ['Not An Id'] } }, 400],
        [{ type: 'expiry_vibes', config: {} }, 400],
        [{ type: 'max_lifetime' }, 400],
        [{ type: 'max_lifetime', config: { max_days: 30 }, severity: 'Fatal' }, 400],
        [{ type: 'max_lifetime', config: { max_days: 30 }, extra: true }, 400],
        [{ type: 'max_lifetime', config: { max_days: 30 }, agent_group_id: 'ag-missing' }, 422],
      ];
      for (const [body, status] of bad) {
        const res = await t.api.post('/api/v1/policies', { name: 'bad policy', ...body });
        expect(res.status, JSON.stringify(body)).toBe(status);
      }
      expect(await count(t, 'policies')).toBe(before);
    });

    it('checks an updated config against the stored type, and a new type needs a new config', async () => {
      const p = (await t.api.post('/api/v1/policies', { name: 'lifetime', type: 'max_lifetime', config: { max_days: 398 } })).body;
      expect(p.severity).toBe('Warning');

      const wrongShape = await t.api.put(`/api/v1/policies/${p.id}`, { config: { patterns: ['.*'] } });
      expect(wrongShape.status).toBe(400);
      expect(wrongShape.body.error.details.map((d: { path: string }) => d.path)).toContain('/config/patterns');
      expect((await t.api.put(`/api/v1/policies/${p.id}`, { type: 'san_pattern' })).status).toBe(400);
      expect((await t.api.put(`/api/v1/policies/${p.id}`, { type: 'san_pattern', config: { max_days: 1 } })).status).toBe(400);
      expect((await t.api.get(`/api/v1/policies/${p.id}`)).body).toMatchObject({ type: 'max_lifetime', config: { max_days: 398 } });

      expect((await t.api.put(`/api/v1/policies/${p.id}`, { config: { max_days: 200 } })).body.config).toEqual({ max_days: 200 });
      const retyped = await t.api.put(`/api/v1/policies/${p.id}`, { type: 'san_pattern', config: { patterns: ['^[a-z]+\\.example\\.com$'] }, severity: 'Critical' });
      expect(retyped.status).toBe(200);
      expect(retyped.body).toMatchObject({ type: 'san_pattern', severity: 'Critical' });
      expect((await t.api.put(`/api/v1/policies/${p.id}`, { config: { patterns: ['[z-a]'] } })).status).toBe(400);

      const audit = await t.api.get(`/api/v1/audit?resource_type=policy&resource_id=${p.id}&category=lifecycle`);
      expect(audit.body.data.map((e: { action: string }) => e.action).sort()).toEqual(['policy_created', 'policy_updated', 'policy_updated']);
    });

    it('lists violations per policy and across policies with filters', async () => {
      const p1 = (await t.api.post('/api/v1/policies', { name: 'v1', type: 'max_lifetime', config: { max_days: 90 } })).body.id;
      const p2 = (await t.api.post('/api/v1/policies', { name: 'v2', type: 'key_algorithm', config: { allowed_algorithms: ['ECDSA'] }, severity: 'Critical' })).body.id;
      const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
      await t.kernel.db.knex('policy_violations').insert([
        { id: 'pv-1', policy_id: p1, certificate_id: 'mc-inv-api', severity: 'Warning', message: 'lifetime 398 days > 90', created_at: at(1) },
        { id: 'pv-2', policy_id: p1, certificate_id: 'mc-inv-www', severity: 'Warning', message: 'lifetime 200 days > 90', created_at: at(2), resolved_at: at(10) },
        { id: 'pv-3', policy_id: p2, certificate_id: 'mc-inv-api', severity: 'Critical', message: 'RSA key', created_at: at(3) },
      ]);

      const ofP1 = await t.api.get(`/api/v1/policies/${p1}/violations`);
      expect(ofP1.status).toBe(200);
      expect(ofP1.body.data.map((v: { id: string }) => v.id)).toEqual(['pv-2', 'pv-1']);
      expect(ofP1.body.data[1]).toEqual({ id: 'pv-1', policy_id: p1, certificate_id: 'mc-inv-api', severity: 'Warning', message: 'lifetime 398 days > 90', resolved_at: null, created_at: at(1).toISOString() });
      expect((await t.api.get(`/api/v1/policies/${p1}/violations?resolved=false`)).body.data.map((v: { id: string }) => v.id)).toEqual(['pv-1']);
      expect((await t.api.get('/api/v1/policies/pol-missing/violations')).status).toBe(404);

      const all = async (q: string) => (await t.api.get(`/api/v1/policy-violations?${q}`)).body.data.map((v: { id: string }) => v.id);
      expect(await all('sort=created_at')).toEqual(['pv-1', 'pv-2', 'pv-3']);
      expect(await all('certificate_id=mc-inv-api&sort=created_at')).toEqual(['pv-1', 'pv-3']);
      expect(await all('severity=Critical')).toEqual(['pv-3']);
      expect(await all(`policy_id=${p1}&resolved=true`)).toEqual(['pv-2']);
      expect(await all('resolved=false&sort=created_at')).toEqual(['pv-1', 'pv-3']);
      expect(await all(`created_after=${at(2).toISOString()}`)).toEqual(['pv-3']);
      expect((await t.api.get('/api/v1/policy-violations?resolved=maybe')).status).toBe(400);
      expect((await t.api.get('/api/v1/policy-violations?severity=Meh')).status).toBe(400);

      // Deleting a policy takes its violations with it.
      expect((await t.api.delete(`/api/v1/policies/${p1}`)).status).toBe(204);
      expect(await all('sort=created_at')).toEqual(['pv-3']);
    });
  });

  describe('renewal policies', () => {
    it('stores thresholds distinct and in descending order, with defaults', async () => {
      const dflt = await t.api.post('/api/v1/renewal-policies', { name: 'default' });
      expect(dflt.status).toBe(201);
      expect(dflt.body).toMatchObject({ renewal_window_days: 30, alert_thresholds_days: [30, 14, 7, 0], auto_renew: true, max_retries: 3, retry_interval_seconds: 3600, agent_group_id: null });

      const custom = await t.api.post('/api/v1/renewal-policies', { name: 'short', renewal_window_days: 10, alert_thresholds_days: [1, 7, 3, 0], auto_renew: false, agent_group_id: groupId });
      expect(custom.status).toBe(201);
      expect(custom.body).toMatchObject({ alert_thresholds_days: [7, 3, 1, 0], auto_renew: false, agent_group_id: groupId });
      const updated = await t.api.put(`/api/v1/renewal-policies/${custom.body.id}`, { alert_thresholds_days: [5, 60] });
      expect(updated.body.alert_thresholds_days).toEqual([60, 5]);
      expect((await t.api.get('/api/v1/renewal-policies?auto_renew=false&fields=name')).body.data).toEqual([{ id: custom.body.id, name: 'short' }]);
    });

    it('refuses out-of-range or repeated values and unknown groups, writing nothing', async () => {
      const before = await count(t, 'renewal_policies');
      const bad: [Record<string, unknown>, number][] = [
        [{ renewal_window_days: 0 }, 400],
        [{ renewal_window_days: 366 }, 400],
        [{ renewal_window_days: 1.5 }, 400],
        [{ alert_thresholds_days: [7, 7] }, 400],
        [{ alert_thresholds_days: [400] }, 400],
        [{ alert_thresholds_days: [-1] }, 400],
        [{ alert_thresholds_days: '30,14' }, 400],
        [{ max_retries: -1 }, 400],
        [{ retry_interval_seconds: 1 }, 400],
        [{ auto_renew: 'true' }, 400],
        [{ agent_group_id: 'ag-missing' }, 422],
        [{ window: 3 }, 400],
      ];
      for (const [body, status] of bad) {
        const res = await t.api.post('/api/v1/renewal-policies', { name: 'bad', ...body });
        expect(res.status, JSON.stringify(body)).toBe(status);
      }
      expect(await count(t, 'renewal_policies')).toBe(before);
    });

    it('lets go of a deleted agent group', async () => {
      const g = (await t.api.post('/api/v1/agent-groups', { name: 'short-lived' })).body.id;
      const rp = (await t.api.post('/api/v1/renewal-policies', { name: 'grouped', agent_group_id: g })).body.id;
      expect((await t.api.delete(`/api/v1/agent-groups/${g}`)).status).toBe(204);
      expect((await t.api.get(`/api/v1/renewal-policies/${rp}`)).body.agent_group_id).toBeNull();
    });
  });

  describe('notifications', () => {
    beforeAll(async () => {
      const at = (s: number) => new Date(Date.UTC(2026, 1, 1, 0, 0, s));
      await t.kernel.db.knex('notifications').insert([
        { id: 'notif-1', type: 'ExpirationWarning', certificate_id: 'mc-inv-api', recipient: 'ops@example.com', subject: 'api expires in 14 days', status: 'sent', sent_at: at(1), dedupe_key: 'exp:mc-inv-api:14', created_at: at(1) },
        { id: 'notif-2', type: 'RenewalFailure', certificate_id: 'mc-inv-www', subject: 'www renewal failed', status: 'failed', error: 'issuer down', created_at: at(2) },
        { id: 'notif-3', type: 'ExpirationWarning', certificate_id: 'mc-inv-www', subject: 'www expires in 7 days', status: 'pending', created_at: at(3) },
      ]);
    });

    it('lists with filters, newest first, without internal bookkeeping', async () => {
      const list = await t.api.get('/api/v1/notifications');
      expect(list.status).toBe(200);
      expect(list.body.data.map((n: { id: string }) => n.id)).toEqual(['notif-3', 'notif-2', 'notif-1']);
      expect(list.body.data[2]).not.toHaveProperty('dedupe_key');
      expect(list.body.data[2]).toMatchObject({ type: 'ExpirationWarning', recipient: 'ops@example.com', status: 'sent', read_at: null });
      const ids = async (q: string) => (await t.api.get(`/api/v1/notifications?${q}`)).body.data.map((n: { id: string }) => n.id);
      expect(await ids('type=ExpirationWarning')).toEqual(['notif-3', 'notif-1']);
      expect(await ids('status=failed,pending&sort=created_at')).toEqual(['notif-2', 'notif-3']);
      expect(await ids('certificate_id=mc-inv-www')).toEqual(['notif-3', 'notif-2']);
      expect((await t.api.get('/api/v1/notifications?type=Gossip')).status).toBe(400);
      expect((await t.api.get('/api/v1/notifications/notif-2')).body).toMatchObject({ id: 'notif-2', error: 'issuer down' });
    });

    it('marks one read idempotently, then all', async () => {
      const first = await t.api.post('/api/v1/notifications/notif-1/read');
      expect(first.status).toBe(200);
      expect(first.body.read_at).not.toBeNull();
      const again = await t.api.post('/api/v1/notifications/notif-1/read');
      expect(again.status).toBe(200);
      expect(again.body.read_at).toBe(first.body.read_at);
      expect((await t.api.post('/api/v1/notifications/notif-missing/read')).status).toBe(404);

      const ids = async (q: string) => (await t.api.get(`/api/v1/notifications?${q}`)).body.data.map((n: { id: string }) => n.id);
      expect(await ids('read=true')).toEqual(['notif-1']);
      expect(await ids('read=false')).toEqual(['notif-3', 'notif-2']);

      const all = await t.api.post('/api/v1/notifications/read-all');
      expect(all.status).toBe(200);
      expect(all.body).toEqual({ updated: 2 });
      expect(await ids('read=false')).toEqual([]);
      expect((await t.api.post('/api/v1/notifications/read-all')).body).toEqual({ updated: 0 });
      expect((await t.api.get('/api/v1/notifications/notif-1')).body.read_at).toBe(first.body.read_at);

      const audit = await t.api.get('/api/v1/audit?resource_type=notification&category=lifecycle');
      expect(audit.body.data.map((e: { action: string; resource_id: string }) => [e.action, e.resource_id])).toEqual([
        ['notifications_read_all', ''], ['notification_read', 'notif-1'],
      ]);
    });

    it('cannot be created, edited or deleted through the API', async () => {
      expect((await t.api.post('/api/v1/notifications', { type: 'Revocation' })).status).toBe(405);
      expect((await t.api.put('/api/v1/notifications/notif-1', { subject: 'x' })).status).toBe(405);
      expect((await t.api.delete('/api/v1/notifications/notif-1')).status).toBe(405);
      const viewer = t.api.withKey(await t.keyWithRole('viewer'));
      expect((await viewer.get('/api/v1/notifications')).status).toBe(200);
      expect((await viewer.post('/api/v1/notifications/read-all')).status).toBe(403);
    });
  });
});
