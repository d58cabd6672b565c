import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditActions } from '../lifecycle/cert-fixtures.js';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/*
 * The flip-flop loophole: if one person could edit an approval-tier profile alone,
 * they could turn requires_approval off, issue, and turn it back on. Every edit that
 * passes through an approval-tier profile (keeping it on, turning it off, turning it
 * on) is stored as a profile_edit request and applied only when someone else approves:
 * a key outside the requester's lineage. Requester and approver are sibling keys minted
 * by the initial admin key.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('profile edit approval gate', () => {
  let t: TestKernel;
  let knex: Knex;
  let requester: ApiClient;
  let requesterActor: string;
  let second: ApiClient;
  let secondActor: string;

  const profile = async (id: string) => (await t.api.get(`/api/v1/profiles/${id}`)).body;
  const approvalCount = async () => Number(((await knex('approval_requests').count({ n: '*' }).first()) as { n: number }).n);

  async function newProfile(name: string, requiresApproval: boolean): Promise<string> {
    const res = await t.api.post('/api/v1/profiles', { name, requires_approval: requiresApproval, max_ttl_seconds: 86400 });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  /** Proposes an edit as the admin key; asserts it was held, not applied. */
  async function propose(id: string, change: Record<string, unknown>): Promise<string> {
    const before = await profile(id);
    const res = await requester.put(`/api/v1/profiles/${id}`, change);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ approval_id: expect.stringMatching(/^apr-/), status: 'pending' });
    expect(await profile(id)).toEqual(before);
    const request = (await t.api.get(`/api/v1/approvals/${res.body.approval_id}`)).body;
    expect(request).toMatchObject({ kind: 'profile_edit', status: 'pending', profile_id: id, job_id: null, certificate_id: null, proposed_change: change });
    return res.body.approval_id;
  }

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    knex = t.kernel.db.knex;
    requester = t.api.withKey(await t.keyWithRole('admin'));
    requesterActor = (await requester.get('/api/v1/auth/me')).body.actor;
    second = t.api.withKey(await t.keyWithRole('admin'));
    secondActor = (await second.get('/api/v1/auth/me')).body.actor;
  });
  afterAll(async () => { await t?.stop(); });

  it('off -> on: turning approval on waits for a second person, then applies exactly the change', async () => {
    const id = await newProfile('flip-on', false);
    const approval = await propose(id, { requires_approval: true, description: 'now gated' });
    const self = await requester.post(`/api/v1/approvals/${approval}/approve`, {});
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe('self_approval');
    // Nor a key the requester mints for the purpose, nor the key that minted the requester.
    const minted = await requester.post('/api/v1/auth/keys', { name: 'my-approver', roles: [{ role_id: 'role-admin' }] });
    expect(minted.status).toBe(201);
    for (const key of [minted.body.key, t.adminKey]) {
      const refused = await t.api.post(`/api/v1/approvals/${approval}/approve`, {}, { key });
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe('self_approval');
    }
    expect((await profile(id)).requires_approval).toBe(false);

    const ok = await second.post(`/api/v1/approvals/${approval}/approve`, {});
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 'approved', decided_by: secondActor });
    expect(await profile(id)).toMatchObject({ requires_approval: true, description: 'now gated', max_ttl_seconds: 86400 });
    const applied = (await knex('audit_events').where({ resource_id: id, action: 'profile_updated' }).first()) as { actor: string; details: Record<string, unknown> };
    expect(applied.actor).toBe(secondActor);
    expect(applied.details).toMatchObject({ approval_id: approval, requested_by: requesterActor });
    expect((applied.details.fields as string[]).sort()).toEqual(['description', 'requires_approval']);
    expect(await auditActions(knex, approval)).toEqual(['approval_requested', 'approval_approved']);
  });

  it('on -> on: any edit of an approval-tier profile is held; a rejection leaves the profile as it was', async () => {
    const id = await newProfile('kept-on', true);
    const approval = await propose(id, { max_ttl_seconds: 31_536_000 });
    const rejected = await second.post(`/api/v1/approvals/${approval}/reject`, { reason: 'a year is too long' });
    expect(rejected.status).toBe(200);
    expect(rejected.body).toMatchObject({ status: 'rejected', reason: 'a year is too long' });
    expect(await profile(id)).toMatchObject({ requires_approval: true, max_ttl_seconds: 86400 });
    const late = await second.post(`/api/v1/approvals/${approval}/approve`, {});
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('approval_decided');
    expect(await profile(id)).toMatchObject({ max_ttl_seconds: 86400 });
  });

  it('on -> off: turning approval off is itself gated, and applies only on approval by someone else', async () => {
    const id = await newProfile('flip-off', true);
    const approval = await propose(id, { requires_approval: false });
    // The requester cannot push it through by any route.
    expect((await requester.post(`/api/v1/approvals/${approval}/approve`, {})).status).toBe(403);
    expect((await requester.put(`/api/v1/profiles/${id}`, { requires_approval: false })).status).toBe(202);
    expect((await profile(id)).requires_approval).toBe(true);
    expect((await second.post(`/api/v1/approvals/${approval}/approve`, { reason: 'retired tier' })).status).toBe(200);
    expect((await profile(id)).requires_approval).toBe(false);
    // Now an ordinary profile: edits apply at once.
    const direct = await t.api.put(`/api/v1/profiles/${id}`, { description: 'plain again', requires_approval: false });
    expect(direct.status).toBe(200);
    expect(direct.body).toMatchObject({ description: 'plain again', requires_approval: false });
  });

  it('refuses invalid proposals up front and writes no request', async () => {
    const id = await newProfile('validated', true);
    await newProfile('taken-name', false);
    const before = await approvalCount();
    const cases: [Record<string, unknown>, number, string][] = [
      [{ required_san_patterns: ['([unclosed'] }, 400, 'validation_failed'],
      [{ allowed_key_algorithms: [{ algorithm: 'RSA', min_size: 2048 }, { algorithm: 'RSA', min_size: 4096 }] }, 400, 'validation_failed'],
      [{ max_ttl_seconds: 5 }, 400, 'validation_failed'],
      [{ bogus: true }, 400, 'validation_failed'],
      [{}, 400, 'validation_failed'],
      [{ name: 'taken-name' }, 409, 'conflict'],
    ];
    for (const [body, status, code] of cases) {
      const res = await t.api.put(`/api/v1/profiles/${id}`, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.code).toBe(code);
    }
    expect((await t.api.put('/api/v1/profiles/prof-nope', { requires_approval: true })).status).toBe(404);
    const viewer = await t.api.put(`/api/v1/profiles/${id}`, { description: 'x' }, { key: await t.keyWithRole('viewer') });
    expect(viewer.status).toBe(403);
    expect(await approvalCount()).toBe(before);
  });

  it('checks the stored change again on approval: a conflict leaves the request pending and the profile unchanged', async () => {
    const id = await newProfile('renamed-later', true);
    const approval = await propose(id, { name: 'wanted-name' });
    await newProfile('wanted-name', false);
    const res = await second.post(`/api/v1/approvals/${approval}/approve`, {});
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    expect((await profile(id)).name).toBe('renamed-later');
    expect((await t.api.get(`/api/v1/approvals/${approval}`)).body.status).toBe('pending');
  });

  it('expires an undecided edit: on approval it is refused, and the reaper closes the rest', async () => {
    const id = await newProfile('slow-review', true);
    const a = await propose(id, { description: 'first' });
    const b = await propose(id, { description: 'second' });
    await knex('approval_requests').whereIn('id', [a, b]).update({ expires_at: new Date(Date.now() - 1000) });
    const late = await second.post(`/api/v1/approvals/${a}/approve`, {});
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('approval_expired');
    expect((await t.api.get(`/api/v1/approvals/${a}`)).body.status).toBe('expired');
    await t.kernel.jobs.reap();
    expect((await t.api.get(`/api/v1/approvals/${b}`)).body).toMatchObject({ status: 'expired', reason: 'approval timed out' });
    expect((await profile(id)).description).toBe('');
    const listed = await t.api.get(`/api/v1/approvals?kind=profile_edit&profile_id=${id}`);
    expect(listed.body.data.map((r: { status: string }) => r.status)).toEqual(['expired', 'expired']);
  });
});
