import { createRouter, createWebHistory, type RouteRecordRaw, type Router } from 'vue-router';
import { session } from '../auth/session';

const resource = (path: string, name: string) => ({ path, name, component: () => import('../pages/ResourcePage.vue'), props: { resource: name } });

export const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('../pages/LoginPage.vue'), meta: { public: true } },
  { path: '/', name: 'dashboard', component: () => import('../pages/DashboardPage.vue') },
  { path: '/certificates', name: 'certificates', component: () => import('../pages/CertificatesPage.vue') },
  { path: '/certificates/:id', name: 'certificate', component: () => import('../pages/CertificateDetailPage.vue'), props: true },
  resource('/agents', 'agents'),
  { path: '/agents/:id', name: 'agent', component: () => import('../pages/AgentDetailPage.vue'), props: true },
  { path: '/fleet', name: 'fleet', component: () => import('../pages/FleetPage.vue') },
  resource('/jobs', 'jobs'),
  { path: '/jobs/:id', name: 'job', component: () => import('../pages/JobDetailPage.vue'), props: true },
  resource('/approvals', 'approvals'),
  { path: '/issuers', name: 'issuers', component: () => import('../pages/InstancesPage.vue'), props: { kind: 'issuer' } },
  { path: '/targets', name: 'targets', component: () => import('../pages/InstancesPage.vue'), props: { kind: 'target' } },
  { path: '/notifiers', name: 'notifiers', component: () => import('../pages/InstancesPage.vue'), props: { kind: 'notifier' } },
  resource('/profiles', 'profiles'),
  resource('/policies', 'policies'),
  { path: '/renewal-policies', name: 'renewalPolicies', component: () => import('../pages/ResourcePage.vue'), props: { resource: 'renewalPolicies' } },
  resource('/owners', 'owners'),
  resource('/teams', 'teams'),
  { path: '/agent-groups', name: 'agentGroups', component: () => import('../pages/ResourcePage.vue'), props: { resource: 'agentGroups' } },
  resource('/notifications', 'notifications'),
  resource('/discovery', 'discovery'),
  { path: '/audit', name: 'audit', component: () => import('../pages/AuditPage.vue') },
  { path: '/plugins', name: 'plugins', component: () => import('../pages/PluginsPage.vue') },
  resource('/roles', 'roles'),
  { path: '/keys', name: 'keys', component: () => import('../pages/ApiKeysPage.vue') },
  { path: '/onboarding', name: 'onboarding', component: () => import('../pages/OnboardingPage.vue') },
  { path: '/:rest(.*)*', name: 'not-found', component: () => import('../pages/NotFoundPage.vue') },
];

export function makeRouter(): Router {
  const router = createRouter({ history: createWebHistory(), routes });
  router.beforeEach((to) => {
    if (!to.meta.public && !session.me) return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} };
    return true;
  });
  return router;
}
