import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_MOUNT_ROOTS } from '@certctl/sdk';
import { DEFAULT_ROLES, isPermission } from '../../kernel/src/auth/permissions.js';
import type { CompiledRoute } from '../../kernel/src/http/route.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/**
 * The RBAC matrix, generated from the live route table: every route is called by
 * every default role and by a caller with no key. A route that holds its
 * permission must let the role past the gate; one that does not must answer 403
 * from the gate itself. Adding a route adds rows here automatically.
 */

// Routes anyone may call without a key. Adding one here is a deliberate security decision.
const PUBLIC_ROUTES = new Set([
  'GET /health',
  'GET /ready',
  'GET /api/v1/openapi.json',
  'GET /api/v1/auth/info',
  'GET /api/v1/auth/check',
  'GET /api/v1/auth/bootstrap',
  'POST /api/v1/auth/bootstrap',
  // Authorised by CERTCTL_AGENT_BOOTSTRAP_TOKEN (checked by the route itself), not by an API key.
  'POST /api/v1/agents/register',
  // http-01 answers for the ACME issuer plugin: the CA fetches them without credentials (RFC 8555 section 8.3).
  'GET /.well-known/acme-challenge/:token',
  // Enrolment protocol mounts (EST, SCEP, ACME server...): the protocol plugin authenticates its own
  // clients (HTTP basic, TLS client certificate, JWS, challenge password); no API key is involved.
  ...PROTOCOL_MOUNT_ROOTS.flatMap((root) => [root, `${root}/*rest`].flatMap((p) => [`GET ${p}`, `POST ${p}`])),
  // Revocation status for relying parties (TLS clients, openssl), who hold no API key.
  'GET /.well-known/pki/crl/:issuer_id',
  'GET /.well-known/pki/crl/:issuer_id/:ca_id',
  'GET /api/v1/crl/:issuer_id',
  'POST /.well-known/pki/ocsp/:issuer_id',
  'GET /.well-known/pki/ocsp/:issuer_id/:request',
  'GET /api/v1/ocsp/:issuer_id/:serial',
]);

const concrete = (path: string) => path.replace(/:([A-Za-z_]+)/g, (_m, name: string) => `rbac-matrix-${name.replace(/_/g, '-')}`);
const gateDenied = (res: { status: number; body: any }, permission: string) =>
  res.status === 403 && res.body?.error?.details?.[0]?.path === 'permission' && res.body.error.details[0].message === permission;

describe.skipIf(POSTGRES_UNAVAILABLE)('RBAC matrix', () => {
  let t: TestKernel;
  const keys: Record<string, string> = {};
  let routes: CompiledRoute[];

  beforeAll(async () => {
    t = await startTestKernel();
    routes = t.kernel.routes;
    for (const role of DEFAULT_ROLES) keys[role.name] = await t.keyWithRole(role.name);
  });
  afterAll(async () => { await t?.stop(); });

  it('every route declares a catalogued permission, or is a deliberate public route', () => {
    expect(routes.length).toBeGreaterThan(10);
    for (const r of routes) {
      const id = `${r.method} ${r.path}`;
      if (r.access === 'public') expect(PUBLIC_ROUTES.has(id), `${id} is public but not in the allow-list`).toBe(true);
      else expect(r.access === 'authenticated' || isPermission(r.access), `${id} has no catalogued permission`).toBe(true);
    }
  });

  it('no key: every non-public route answers 401 with a JSON error', async () => {
    for (const r of routes.filter((r) => r.access !== 'public')) {
      const res = await t.api.request(r.method, concrete(r.path), { key: null, body: r.body ? {} : undefined });
      expect(res.status, `${r.method} ${r.path}`).toBe(401);
      expect(res.body.error.code).toBe('unauthenticated');
    }
  });

  for (const role of DEFAULT_ROLES) {
    it(`role ${role.name}: allowed exactly where the role holds the route's permission`, async () => {
      const held = new Set<string>(role.permissions);
      for (const r of routes) {
        const res = await t.api.request(r.method, concrete(r.path), { key: keys[role.name], body: r.body ? {} : undefined });
        const id = `${role.name} ${r.method} ${r.path} -> ${res.status} ${res.text.slice(0, 160)}`;
        expect(res.status, id).not.toBe(401);
        expect(res.status, id).toBeLessThan(500);
        if (r.access === 'public' || r.access === 'authenticated' || held.has(r.access)) {
          expect(gateDenied(res, String(r.access)), id).toBe(false);
        } else {
          expect(gateDenied(res, r.access), id).toBe(true);
        }
      }
    });
  }

  it('the auditor can reach audit routes and nothing else that needs a permission', () => {
    const auditor = DEFAULT_ROLES.find((r) => r.name === 'auditor')!;
    expect([...auditor.permissions].sort()).toEqual(['audit.export', 'audit.read']);
    const reachable = routes.filter((r) => r.access !== 'public' && r.access !== 'authenticated' && auditor.permissions.includes(r.access as never));
    expect(reachable.every((r) => r.path.startsWith('/api/v1/audit'))).toBe(true);
  });
});
