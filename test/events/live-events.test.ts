import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { LiveTestClient } from './ws-client.js';

/**
 * The live channel at /api/v1/ws against a real kernel (PGlite and PostgreSQL):
 * authentication, permission filtering, job state events, heartbeats and
 * cutting off a revoked key.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('live events over WebSocket', () => {
  let t: TestKernel;
  const clients: LiveTestClient[] = [];
  const connect = (opts?: ConstructorParameters<typeof LiveTestClient>[2]) => {
    const c = new LiveTestClient(t.kernel.url, t.dataDir, opts);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await startTestKernel({
      env: { CERTCTL_SCHEDULER_ENABLED: 'false' },
      start: { liveSocket: { heartbeatMs: 300, authTimeoutMs: 500 }, jobHandlers: { Validation: async () => ({ status: 'completed', result: { checked: true } }) } },
    });
  });
  afterAll(async () => {
    clients.forEach((c) => c.ws.terminate());
    await t?.stop();
  });

  it('authenticates with a first message and pushes lifecycle events', async () => {
    const c = connect();
    const ready = await c.authenticate(t.adminKey);
    expect(ready.actor).toMatch(/^key-/);
    const team = await t.api.post('/api/v1/teams', { name: 'live-ops' });
    expect(team.status).toBe(201);
    const ev = await c.waitFor((m) => m.event?.resource_id === team.body.id);
    expect(ev.event).toMatchObject({ topic: 'team', action: 'team_created', resource_id: team.body.id });
    expect(typeof ev.event!.seq).toBe('number');
  });

  it('never pushes API-call audit rows (a dashboard refetch must not echo back)', async () => {
    const c = connect();
    await c.authenticate(t.adminKey);
    await t.api.get('/api/v1/teams');
    await t.kernel.audit.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(c.events().filter((e) => e.action === 'api_call')).toEqual([]);
  });

  it('pushes job state changes from the job queue: created, then completed by its handler', async () => {
    const c = connect();
    await c.authenticate(t.adminKey);
    const [job] = await t.kernel.jobs.enqueue({ type: 'Validation', payload: { note: 'live test' } });
    await c.waitFor((m) => m.event?.resource_id === job.id && m.event.action === 'job_created');
    await t.kernel.jobs.drainOnce(undefined, { waitForJobs: true });
    const done = await c.waitFor((m) => m.event?.resource_id === job.id && m.event.action === 'job_completed');
    expect(done.event!.topic).toBe('job');
    expect((await t.api.get(`/api/v1/jobs/${job.id}`)).body.status).toBe('Completed');
  });

  it('accepts the key in the Sec-WebSocket-Protocol header and answers with the plain protocol', async () => {
    const c = connect({ protocols: ['certctl.v1', `certctl.key.${t.adminKey}`] });
    await c.opened;
    expect(c.ws.protocol).toBe('certctl.v1');
    await c.waitFor((m) => m.type === 'ready');
  });

  it('refuses a bad key in the header with 401 and a bad first message with close 4401', async () => {
    const bad = connect({ protocols: ['certctl.v1', 'certctl.key.cctl_not_a_key'] });
    await expect(bad.opened).rejects.toThrow(/401/);
    const c = connect();
    await c.opened;
    c.send({ type: 'auth', key: 'cctl_wrong' });
    expect(await c.closed).toBe(4401);
  });

  it('ignores a key in the query string and closes unauthenticated sockets (4408)', async () => {
    const c = connect({ path: `/api/v1/ws?key=${t.adminKey}` });
    await c.opened;
    expect(await c.closed).toBe(4408);
    expect(c.messages.find((m) => m.type === 'ready')).toBeUndefined();
  });

  it('only serves /api/v1/ws', async () => {
    const c = connect({ path: '/api/v1/other' });
    await expect(c.opened).rejects.toThrow(/404/);
  });

  it('filters events by the permissions of the key', async () => {
    const role = await t.api.post('/api/v1/auth/roles', { name: 'job-watcher', description: 'jobs only', permissions: ['job.read'] });
    expect(role.status, role.text).toBe(201);
    const key = await t.api.post('/api/v1/auth/keys', { name: 'watcher', roles: [{ role_id: role.body.id }] });
    expect(key.status, key.text).toBe(201);
    const watcher = connect();
    await watcher.authenticate(key.body.key);
    const admin = connect();
    await admin.authenticate(t.adminKey);
    const team = await t.api.post('/api/v1/teams', { name: 'hidden-from-watcher' });
    const [job] = await t.kernel.jobs.enqueue({ type: 'Validation', payload: {} });
    await admin.waitFor((m) => m.event?.resource_id === team.body.id);
    await watcher.waitFor((m) => m.event?.resource_id === job.id);
    await admin.waitFor((m) => m.event?.resource_id === job.id);
    expect(watcher.events().map((e) => e.topic)).not.toContain('team');
    expect(watcher.events().every((e) => e.topic === 'job' || e.topic === 'approval')).toBe(true);
  });

  it('honours profile scopes through the event hints', async () => {
    expect((await t.api.post('/api/v1/profiles', { id: 'prof-live', name: 'live' })).status).toBe(201);
    const scopedKey = await t.keyWithRole('viewer', { scope_type: 'profile', scope_id: 'prof-live' });
    const scoped = connect();
    await scoped.authenticate(scopedKey);
    const lifecycle = (id: string, profile: string) => ({
      category: 'lifecycle' as const, actor: 'system', actor_type: 'system', action: 'certificate_updated', resource_type: 'certificate', resource_id: id, details: { profile_id: profile },
    });
    await t.kernel.audit.append([lifecycle('mc-other-profile', 'prof-elsewhere'), lifecycle('mc-in-scope', 'prof-live')]);
    await scoped.waitFor((m) => m.event?.resource_id === 'mc-in-scope');
    expect(scoped.events().map((e) => e.resource_id)).not.toContain('mc-other-profile');
  });

  it('sends heartbeat pings and cuts off a key revoked mid-session', async () => {
    const created = await t.api.post('/api/v1/auth/keys', { name: 'short-lived', roles: [{ role_id: 'role-viewer' }] });
    const c = connect();
    await c.authenticate(created.body.key);
    await new Promise((r) => setTimeout(r, 700));
    expect(c.pings).toBeGreaterThanOrEqual(1);
    expect(c.closeCode).toBeNull();
    const revoked = await t.api.delete(`/api/v1/auth/keys/${created.body.id}`);
    expect(revoked.status).toBeLessThan(300);
    expect(await c.closed).toBe(4401);
  });
});
