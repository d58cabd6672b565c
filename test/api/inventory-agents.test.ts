import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

const count = async (t: TestKernel, table: string) => Number(((await t.kernel.db.knex(table).count({ n: '*' }).first()) as { n: number }).n);

describe.skipIf(POSTGRES_UNAVAILABLE)('agents', () => {
  let t: TestKernel;
  beforeAll(async () => { t = await startTestKernel(); });
  afterAll(async () => { await t?.stop(); });

  it('registers, lists, renames and deletes an agent record', async () => {
    const created = await t.api.post('/api/v1/agents', { name: 'web-01', os: 'linux', architecture: 'amd64' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'web-01', status: 'Offline', os: 'linux', architecture: 'amd64', capabilities: [], api_key_id: null, last_heartbeat_at: null });
    expect(created.body.id).toMatch(/^agent-[0-9a-f]{16}$/);
    expect(created.body.api_key).toBeUndefined();
    const id = created.body.id as string;

    const renamed = await t.api.put(`/api/v1/agents/${id}`, { name: 'web-01.prod' });
    expect(renamed.status).toBe(200);
    expect(renamed.body.name).toBe('web-01.prod');
    // Host facts come from heartbeats, not from edits.
    expect((await t.api.put(`/api/v1/agents/${id}`, { os: 'windows' })).status).toBe(400);

    const listed = await t.api.get('/api/v1/agents?os=linux&status=Offline&fields=name,status');
    expect(listed.body.data).toContainEqual({ id, name: 'web-01.prod', status: 'Offline' });
    expect((await t.api.get('/api/v1/agents?status=Sleeping')).status).toBe(400);
    expect((await t.api.get('/api/v1/agents?sort=-last_heartbeat_at')).status).toBe(200);

    expect((await t.api.delete(`/api/v1/agents/${id}`)).status).toBe(204);
    expect((await t.api.get(`/api/v1/agents/${id}`)).status).toBe(404);
    const audit = await t.api.get(`/api/v1/audit?resource_type=agent&resource_id=${id}&category=lifecycle`);
    expect(audit.body.data.map((e: { action: string }) => e.action).sort()).toEqual(['agent_created', 'agent_deleted', 'agent_updated']);
  });

  it('refuses bad registrations and writes nothing', async () => {
    const before = await count(t, 'agents');
    for (const body of [{}, { name: 'x', colour: 'red' }, { name: 'x', ip_address: '999.1.1.1' }, { name: 5 }, { name: 'x', create_key: 'yes' }]) {
      const res = await t.api.post('/api/v1/agents', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    expect(await count(t, 'agents')).toBe(before);
  });

  it('mints an agent key only for callers who may create keys', async () => {
    const keysBefore = await count(t, 'api_keys');
    const agentsBefore = await count(t, 'agents');
    const operator = t.api.withKey(await t.keyWithRole('operator'));
    const refused = await operator.post('/api/v1/agents', { name: 'no-key-for-you', create_key: true });
    expect(refused.status).toBe(403);
    expect(await count(t, 'agents')).toBe(agentsBefore);
    expect(await count(t, 'api_keys')).toBe(keysBefore + 1); // only the operator key made above

    const plain = await operator.post('/api/v1/agents', { name: 'operator-made' });
    expect(plain.status).toBe(201);

    const created = await t.api.post('/api/v1/agents', { name: 'with-key', create_key: true });
    expect(created.status).toBe(201);
    expect(created.body.api_key.key).toMatch(/^cctl_/);
    expect(created.body.api_key_id).toBe(created.body.api_key.id);
    const key = await t.api.get(`/api/v1/auth/keys/${created.body.api_key_id}`);
    expect(key.body).toMatchObject({ actor_type: 'agent', revoked_at: null });
    expect(key.body.roles.map((r: { role_id: string; scope_type: string }) => [r.role_id, r.scope_type])).toEqual([['role-agent', 'global']]);
    expect(key.body.key).toBeUndefined();
    // The key is shown once: reading the agent never returns it.
    expect((await t.api.get(`/api/v1/agents/${created.body.id}`)).body.api_key).toBeUndefined();

    const me = await t.api.withKey(created.body.api_key.key).get('/api/v1/auth/me');
    expect(me.body).toMatchObject({ actor_type: 'agent', effective_permissions: ['agent.operate'] });
  });

  it('accepts a heartbeat only from the agent itself', async () => {
    const a = (await t.api.post('/api/v1/agents', { name: 'hb-a', create_key: true })).body;
    const b = (await t.api.post('/api/v1/agents', { name: 'hb-b', create_key: true })).body;
    const asA = t.api.withKey(a.api_key.key);
    const facts = { hostname: 'hb-a.example.net', os: 'linux', platform: 'debian 12', architecture: 'arm64', ip_address: '10.9.8.7', version: '1.2.3', capabilities: ['nginx', 'file'] };

    const ok = await asA.post(`/api/v1/agents/${a.id}/heartbeat`, facts);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: a.id, status: 'Online', ...facts });
    expect(Date.now() - new Date(ok.body.last_heartbeat_at).getTime()).toBeLessThan(60_000);

    // Another agent's key, an admin key (no agent.operate), an unknown agent id.
    const asB = await t.api.withKey(b.api_key.key).post(`/api/v1/agents/${a.id}/heartbeat`, { version: '6.6.6' });
    expect(asB.status).toBe(403);
    expect(asB.body.error.code).toBe('forbidden');
    expect((await t.api.post(`/api/v1/agents/${a.id}/heartbeat`, {})).status).toBe(403);
    expect((await asA.post('/api/v1/agents/agent-does-not-exist/heartbeat', {})).status).toBe(403);
    expect((await asA.post(`/api/v1/agents/${a.id}/heartbeat`, { version: 1 })).status).toBe(400);
    expect((await asA.post(`/api/v1/agents/${a.id}/heartbeat`, { cpu: 'fast' })).status).toBe(400);

    const stored = (await t.api.get(`/api/v1/agents/${a.id}`)).body;
    expect(stored.version).toBe('1.2.3');
    expect((await t.api.get(`/api/v1/agents/${b.id}`)).body.status).toBe('Offline');

    const events = await t.api.get(`/api/v1/audit?resource_type=agent&resource_id=${a.id}&action=agent_status_changed`);
    expect(events.body.data).toHaveLength(1);
    expect(events.body.data[0].details).toEqual({ from: 'Offline', to: 'Online' });
    // The agent key cannot do anything else.
    expect((await asA.get('/api/v1/agents')).status).toBe(403);
  });

  it('refuses to delete an agent that targets use, and revokes its key on delete', async () => {
    const agent = (await t.api.post('/api/v1/agents', { name: 'deploy-host', create_key: true })).body;
    await t.kernel.db.knex('targets').insert({ id: 'tgt-inventory-test', name: 'nginx on deploy-host', type: 'nginx', agent_id: agent.id });
    const refused = await t.api.delete(`/api/v1/agents/${agent.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('in_use');
    await t.kernel.db.knex('targets').where({ id: 'tgt-inventory-test' }).delete();

    expect((await t.api.delete(`/api/v1/agents/${agent.id}`)).status).toBe(204);
    expect((await t.api.get(`/api/v1/auth/keys/${agent.api_key_id}`)).body.revoked_at).not.toBeNull();
    expect((await t.api.withKey(agent.api_key.key).get('/api/v1/auth/me')).status).toBe(401);
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('agent groups', () => {
  let t: TestKernel;
  const agents: Record<string, string> = {};
  beforeAll(async () => {
    t = await startTestKernel();
    const fleet = [
      { name: 'lin-amd-10', os: 'linux', architecture: 'amd64', ip_address: '10.0.1.5', version: '1.4.2' },
      { name: 'lin-arm-10', os: 'Linux', architecture: 'arm64', ip_address: '10.0.2.9', version: '1.4.0' },
      { name: 'lin-amd-192', os: 'linux', architecture: 'amd64', ip_address: '192.168.1.4', version: '1.3.9' },
      { name: 'win-amd-10', os: 'windows', architecture: 'amd64', ip_address: '10.0.3.3', version: '1.4.2' },
      { name: 'no-facts' },
    ];
    for (const a of fleet) agents[a.name] = (await t.api.post('/api/v1/agents', a)).body.id;
  });
  afterAll(async () => { await t?.stop(); });

  const memberNames = async (groupId: string, query = '') => {
    const res = await t.api.get(`/api/v1/agent-groups/${groupId}/members?per_page=500${query}`);
    expect(res.status).toBe(200);
    return Object.fromEntries(res.body.data.map((a: { name: string; membership: string }) => [a.name, a.membership]));
  };

  it('does CRUD and validates the CIDR', async () => {
    const created = await t.api.post('/api/v1/agent-groups', { name: 'linux-10', match_os: 'linux', match_ip_cidr: '10.0.0.0/8' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'linux-10', match_os: 'linux', match_architecture: null, match_ip_cidr: '10.0.0.0/8', enabled: true });

    const before = await count(t, 'agent_groups');
    for (const cidr of ['10.0.0.0', '10.0.0.0/33', 'fd00::/200', 'ten/8']) {
      const res = await t.api.post('/api/v1/agent-groups', { name: `bad ${cidr}`, match_ip_cidr: cidr });
      expect(res.status, cidr).toBe(400);
      expect(res.body.error.details[0].path).toBe('/match_ip_cidr');
    }
    expect((await t.api.post('/api/v1/agent-groups', { name: 'bad version', match_version: '*' })).status).toBe(400);
    expect((await t.api.post('/api/v1/agent-groups', { name: 'bad', enabled: 'yes' })).status).toBe(400);
    const badUpdate = await t.api.put(`/api/v1/agent-groups/${created.body.id}`, { match_ip_cidr: '300.0.0.0/8' });
    expect(badUpdate.status).toBe(400);
    expect(await count(t, 'agent_groups')).toBe(before);
    expect((await t.api.get(`/api/v1/agent-groups/${created.body.id}`)).body.match_ip_cidr).toBe('10.0.0.0/8');

    const v6 = await t.api.put(`/api/v1/agent-groups/${created.body.id}`, { match_ip_cidr: 'fd00::/8', enabled: false });
    expect(v6.body).toMatchObject({ match_ip_cidr: 'fd00::/8', enabled: false });
    expect((await t.api.get('/api/v1/agent-groups?enabled=false')).body.data.map((g: { id: string }) => g.id)).toEqual([created.body.id]);
    expect((await t.api.delete(`/api/v1/agent-groups/${created.body.id}`)).status).toBe(204);
  });

  it('resolves members from criteria, manual includes and excludes', async () => {
    const group = (await t.api.post('/api/v1/agent-groups', { name: 'linux-amd64-10net', match_os: 'LINUX', match_architecture: 'amd64', match_ip_cidr: '10.0.0.0/16' })).body;
    expect(await memberNames(group.id)).toEqual({ 'lin-amd-10': 'dynamic' });

    const widened = await t.api.put(`/api/v1/agent-groups/${group.id}`, { match_architecture: null, match_version: '1.4.*' });
    expect(widened.status).toBe(200);
    expect(await memberNames(group.id)).toEqual({ 'lin-amd-10': 'dynamic', 'lin-arm-10': 'dynamic' });

    const include = await t.api.post(`/api/v1/agent-groups/${group.id}/members`, { agent_id: agents['win-amd-10'] });
    expect(include.status).toBe(201);
    expect(include.body).toMatchObject({ agent_group_id: group.id, agent_id: agents['win-amd-10'], membership_type: 'include' });
    const exclude = await t.api.post(`/api/v1/agent-groups/${group.id}/members`, { agent_id: agents['lin-arm-10'], membership_type: 'exclude' });
    expect(exclude.status).toBe(201);
    expect(await memberNames(group.id)).toEqual({ 'lin-amd-10': 'dynamic', 'win-amd-10': 'include' });
    expect(await memberNames(group.id, '&architecture=amd64&sort=-name')).toEqual({ 'win-amd-10': 'include', 'lin-amd-10': 'dynamic' });
    const trimmed = await t.api.get(`/api/v1/agent-groups/${group.id}/members?fields=name,membership&sort=name`);
    expect(trimmed.body.data).toEqual([
      { id: agents['lin-amd-10'], name: 'lin-amd-10', membership: 'dynamic' },
      { id: agents['win-amd-10'], name: 'win-amd-10', membership: 'include' },
    ]);

    // Switching a manual membership replaces it; removing it returns to the criteria.
    expect((await t.api.post(`/api/v1/agent-groups/${group.id}/members`, { agent_id: agents['win-amd-10'], membership_type: 'exclude' })).status).toBe(201);
    expect(await memberNames(group.id)).toEqual({ 'lin-amd-10': 'dynamic' });
    expect((await t.api.delete(`/api/v1/agent-groups/${group.id}/members/${agents['lin-arm-10']}`)).status).toBe(204);
    expect(await memberNames(group.id)).toEqual({ 'lin-amd-10': 'dynamic', 'lin-arm-10': 'dynamic' });
    expect((await t.api.delete(`/api/v1/agent-groups/${group.id}/members/${agents['lin-arm-10']}`)).status).toBe(404);

    const events = await t.api.get(`/api/v1/audit?resource_type=agent_group&resource_id=${group.id}&category=lifecycle`);
    expect(events.body.data.map((e: { action: string }) => e.action).sort()).toEqual([
      'agent_group_created', 'agent_group_member_removed', 'agent_group_member_set', 'agent_group_member_set', 'agent_group_member_set', 'agent_group_updated',
    ]);
  });

  it('has only manual members without criteria, and checks references', async () => {
    const group = (await t.api.post('/api/v1/agent-groups', { name: 'hand-picked' })).body;
    expect(await memberNames(group.id)).toEqual({});
    const missing = await t.api.post(`/api/v1/agent-groups/${group.id}/members`, { agent_id: 'agent-ghost' });
    expect(missing.status).toBe(422);
    expect(missing.body.error.code).toBe('reference_not_found');
    expect((await t.api.post(`/api/v1/agent-groups/${group.id}/members`, { agent_id: agents['no-facts'], membership_type: 'maybe' })).status).toBe(400);
    expect((await t.api.post('/api/v1/agent-groups/ag-ghost/members', { agent_id: agents['no-facts'] })).status).toBe(404);
    expect((await t.api.get('/api/v1/agent-groups/ag-ghost/members')).status).toBe(404);
    expect(await t.kernel.db.knex('agent_group_members').where({ agent_group_id: group.id })).toEqual([]);

    expect((await t.api.post(`/api/v1/agent-groups/${group.id}/members`, { agent_id: agents['no-facts'] })).status).toBe(201);
    expect(await memberNames(group.id)).toEqual({ 'no-facts': 'include' });
    // Deleting the agent drops its memberships with it.
    expect((await t.api.delete(`/api/v1/agents/${agents['no-facts']}`)).status).toBe(204);
    expect(await memberNames(group.id)).toEqual({});
  });

  it('lets agent.read callers list members but not change them', async () => {
    const viewer = t.api.withKey(await t.keyWithRole('viewer'));
    const group = (await t.api.post('/api/v1/agent-groups', { name: 'viewer-visible', match_os: 'windows' })).body;
    const res = await viewer.get(`/api/v1/agent-groups/${group.id}/members`);
    expect(res.status).toBe(200);
    expect(res.body.data.map((a: { name: string }) => a.name)).toEqual(['win-amd-10']);
    expect((await viewer.post(`/api/v1/agent-groups/${group.id}/members`, { agent_id: agents['lin-amd-10'] })).status).toBe(403);
  });
});
