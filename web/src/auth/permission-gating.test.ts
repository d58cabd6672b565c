import { flushPromises, mount } from '@vue/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryHistory, createRouter } from 'vue-router';
import App from '../App.vue';
import CertificatesPage from '../pages/CertificatesPage.vue';
import ResourcePage from '../pages/ResourcePage.vue';
import JobDetailPage from '../pages/JobDetailPage.vue';
import { routes } from '../router';
import { envelope, fakeApi, settle } from '../test-support/fake-api';
import { can, session, type Me } from './session';

const VIEWER: Me = {
  actor: 'key-v', actor_type: 'user', name: 'viewer-key', key_id: 'key-v', roles: [{ role_id: 'role-viewer', role: 'viewer', scope_type: 'global', scope_id: '' }],
  effective_permissions: ['cert.read', 'job.read', 'owner.read', 'agent.read', 'issuer.read', 'plugin.read', 'audit.read'], scoped_grants: [],
};
const ADMIN: Me = {
  ...VIEWER, actor: 'key-a', name: 'admin-key', roles: [{ role_id: 'role-admin', role: 'admin', scope_type: 'global', scope_id: '' }],
  effective_permissions: [...VIEWER.effective_permissions, 'cert.create', 'cert.renew', 'cert.edit', 'owner.manage', 'job.approve', 'job.cancel', 'auth.key.list', 'audit.export'],
};

function api() {
  return fakeApi({
    'GET /api/v1/teams': () => [200, envelope([{ id: 'team-1', name: 'ops', description: 'on call' }])],
    'GET /api/v1/certificates': () => [200, envelope([{ id: 'mc-1', common_name: 'a.example', status: 'Active' }])],
    'GET /api/v1/jobs/job-1': () => [200, { id: 'job-1', type: 'Issuance', status: 'AwaitingApproval', attempts: 0, max_attempts: 3 }],
    'GET /api/v1/audit': () => [200, envelope([])],
  });
}

const mounted: { unmount(): void }[] = [];

async function mountWithRouter(component: unknown, props: Record<string, unknown> = {}, at = '/teams') {
  const router = createRouter({ history: createMemoryHistory(), routes });
  await router.push(at);
  const w = mount(component as never, { props, global: { plugins: [router] } } as never);
  mounted.push(w);
  await flushPromises();
  await settle();
  return w;
}

afterEach(() => {
  mounted.splice(0).forEach((w) => w.unmount());
  session.me = null;
  vi.unstubAllGlobals();
});

describe('permission gating (the server stays the gate; the UI hides what would fail)', () => {
  it('can() follows the effective permissions from /auth/me', () => {
    session.me = VIEWER;
    expect(can('cert.read')).toBe(true);
    expect(can('cert.create')).toBe(false);
    session.me = null;
    expect(can('cert.read')).toBe(false);
  });

  it('a viewer sees a resource list without create or delete buttons', async () => {
    api();
    session.me = VIEWER;
    const w = await mountWithRouter(ResourcePage, { resource: 'teams' });
    expect(w.find('[data-testid="teams-table-row-team-1"]').exists()).toBe(true);
    expect(w.find('[data-testid="teams-create"]').exists()).toBe(false);
    expect(w.find('[data-testid="teams-delete-team-1"]').exists()).toBe(false);
    expect(w.findAll('button').map((b) => b.attributes('data-testid')).filter((t) => /-(create|delete|approve|reject)(-|$)/.test(t ?? ''))).toEqual([]);
  });

  it('an admin sees them', async () => {
    api();
    session.me = ADMIN;
    const w = await mountWithRouter(ResourcePage, { resource: 'teams' });
    expect(w.find('[data-testid="teams-create"]').exists()).toBe(true);
    expect(w.find('[data-testid="teams-delete-team-1"]').exists()).toBe(true);
  });

  it('certificates: no create, no selection checkboxes for a viewer', async () => {
    api();
    session.me = VIEWER;
    const viewer = await mountWithRouter(CertificatesPage);
    expect(viewer.find('[data-testid="certificates-table-row-mc-1"]').exists()).toBe(true);
    expect(viewer.find('[data-testid="certificates-create"]').exists()).toBe(false);
    expect(viewer.find('[data-testid="certificates-table-select-mc-1"]').exists()).toBe(false);
    session.me = ADMIN;
    const admin = await mountWithRouter(CertificatesPage);
    expect(admin.find('[data-testid="certificates-create"]').exists()).toBe(true);
    expect(admin.find('[data-testid="certificates-table-select-mc-1"]').exists()).toBe(true);
  });

  it('job approval buttons need job.approve', async () => {
    api();
    session.me = VIEWER;
    const viewer = await mountWithRouter(JobDetailPage, { id: 'job-1' });
    expect(viewer.find('[data-testid="job-status"]').text()).toBe('AwaitingApproval');
    expect(viewer.find('[data-testid="job-approve"]').exists()).toBe(false);
    expect(viewer.find('[data-testid="job-cancel"]').exists()).toBe(false);
    session.me = ADMIN;
    const admin = await mountWithRouter(JobDetailPage, { id: 'job-1' });
    expect(admin.find('[data-testid="job-approve"]').exists()).toBe(true);
    expect(admin.find('[data-testid="job-reject"]').exists()).toBe(true);
  });

  it('the navigation lists only areas the key may read', async () => {
    api();
    session.me = VIEWER;
    const w = await mountWithRouter(App);
    expect(w.find('[data-testid="nav-certificates"]').exists()).toBe(true);
    expect(w.find('[data-testid="nav-keys"]').exists()).toBe(false);
    expect(w.find('[data-testid="nav-roles"]').exists()).toBe(false);
    expect(w.find('[data-testid="whoami"]').text()).toContain('viewer');
  });
});
