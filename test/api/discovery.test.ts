import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { Pki, sha256Fingerprint } from './agent-protocol.fixtures.js';

const count = async (t: TestKernel, table: string, where: Record<string, unknown> = {}) =>
  Number(((await t.kernel.db.knex(table).where(where).count({ n: '*' }).first()) as { n: number | string }).n);

describe.skipIf(POSTGRES_UNAVAILABLE)('filesystem discovery', () => {
  let t: TestKernel;
  let pki: Pki;
  let a: { id: string; api: ApiClient };
  let b: { id: string; api: ApiClient };
  let web: string;
  let mail: string;

  const agent = async (name: string) => {
    const res = await t.api.post('/api/v1/agents', { name, create_key: true });
    expect(res.status).toBe(201);
    return { id: res.body.id as string, api: t.api.withKey(res.body.api_key.key) };
  };
  const report = (who: { id: string; api: ApiClient }, body: unknown) => who.api.post(`/api/v1/agents/${who.id}/discoveries`, body);
  const find = async (agentId: string, path: string) => t.kernel.db.knex('discovered_certificates').where({ agent_id: agentId, source_path: path }).first();

  beforeAll(async () => {
    pki = new Pki();
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    a = await agent('disc-a');
    b = await agent('disc-b');
    web = pki.selfSigned('web.example.com', ['web.example.com', 'www.example.com']).pem;
    mail = pki.chain('mail.example.com').leaf;
  });
  afterAll(async () => {
    await t?.stop();
    pki?.cleanup();
  });

  it('parses each PEM itself, trusts only the path, and lists unreadable files back', async () => {
    const res = await report(a, {
      scanned_dirs: ['/etc/nginx', '/etc/postfix'],
      certificates: [
        // The agent's fingerprint claim is wrong: the server computes its own.
        { fingerprint_sha256: '00'.repeat(32), source_path: '/etc/nginx/web.pem', certificate_pem: web },
        { source_path: '/etc/postfix/mail.crt', certificate_pem: `junk before\n${mail}` },
        { fingerprint_sha256: 'x', source_path: '/etc/nginx/broken.pem', certificate_pem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' },
        { source_path: '/etc/nginx/empty.pem', certificate_pem: 'nothing here' },
      ],
      errors: [{ path: '/etc/nginx/secret.key', error: 'permission denied' }],
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ certificates_found: 2, certificates_new: 2, certificates_rejected: 2 });
    expect(res.body.rejected.map((r: { source_path: string }) => r.source_path).sort()).toEqual(['/etc/nginx/broken.pem', '/etc/nginx/empty.pem']);

    const row = await find(a.id, '/etc/nginx/web.pem');
    const x = new (await import('node:crypto')).X509Certificate(web);
    expect(row).toMatchObject({
      fingerprint_sha256: sha256Fingerprint(web), common_name: 'web.example.com', sans: ['web.example.com', 'www.example.com'],
      issuer_dn: 'CN=web.example.com', serial_number: x.serialNumber.toLowerCase(), key_algorithm: 'ECDSA-P256', key_size: 256,
      is_ca: false, status: 'Unmanaged', managed_certificate_id: null,
    });
    expect(new Date(row.not_after).getTime()).toBe(new Date(x.validTo).getTime());
    expect((await find(a.id, '/etc/postfix/mail.crt')).issuer_dn).toBe('CN=mail.example.com test CA');

    const scans = await t.api.get(`/api/v1/discovery-scans?agent_id=${a.id}`);
    expect(scans.body.data).toHaveLength(1);
    expect(scans.body.data[0]).toMatchObject({ scanned_dirs: ['/etc/nginx', '/etc/postfix'], certificates_found: 2, certificates_new: 2, certificates_rejected: 2 });
    expect(scans.body.data[0].errors).toHaveLength(3);
  });

  it('deduplicates by (fingerprint, agent, path): a re-report bumps last_seen_at, a new path or agent is a new row', async () => {
    const before = await find(a.id, '/etc/nginx/web.pem');
    const rows = await count(t, 'discovered_certificates');
    const again = await report(a, { certificates: [
      { source_path: '/etc/nginx/web.pem', certificate_pem: web },
      { source_path: '/etc/nginx/web.pem', certificate_pem: web },
    ] });
    expect(again.body).toMatchObject({ certificates_found: 1, certificates_new: 0 });
    const after = await find(a.id, '/etc/nginx/web.pem');
    expect(after.id).toBe(before.id);
    expect(new Date(after.first_seen_at).getTime()).toBe(new Date(before.first_seen_at).getTime());
    expect(new Date(after.last_seen_at).getTime()).toBeGreaterThan(new Date(before.last_seen_at).getTime());
    expect(await count(t, 'discovered_certificates')).toBe(rows);

    expect((await report(a, { certificates: [{ source_path: '/srv/copy/web.pem', certificate_pem: web }] })).body.certificates_new).toBe(1);
    expect((await report(b, { certificates: [{ source_path: '/etc/nginx/web.pem', certificate_pem: web }] })).body.certificates_new).toBe(1);
    expect(await count(t, 'discovered_certificates', { fingerprint_sha256: sha256Fingerprint(web) })).toBe(3);
  });

  it('takes reports only from the agent itself, within bounds, writing nothing otherwise', async () => {
    const before = { rows: await count(t, 'discovered_certificates'), scans: await count(t, 'discovery_scans') };
    const body = { certificates: [{ source_path: '/x.pem', certificate_pem: web }] };
    expect((await report({ id: a.id, api: b.api }, body)).status).toBe(403);
    expect((await t.api.post(`/api/v1/agents/${a.id}/discoveries`, body)).status).toBe(403);
    expect((await report(a, { certificates: [{ source_path: '', certificate_pem: web }] })).status).toBe(400);
    expect((await report(a, { certificates: [{ source_path: '/x.pem', certificate_pem: web, common_name: 'lies' }] })).status).toBe(400);
    const tooMany = { certificates: Array.from({ length: 1001 }, (_, i) => ({ source_path: `/p/${i}.pem`, certificate_pem: 'x' })) };
    expect((await report(a, tooMany)).status).toBe(400);
    expect({ rows: await count(t, 'discovered_certificates'), scans: await count(t, 'discovery_scans') }).toEqual(before);
  });

  it('lists with agent and status filters, and summarises', async () => {
    const mine = await t.api.get(`/api/v1/discovered-certificates?agent_id=${a.id}&status=Unmanaged&fields=source_path,status`);
    expect(mine.status).toBe(200);
    expect(mine.body.data.map((r: { source_path: string }) => r.source_path).sort()).toEqual(['/etc/nginx/web.pem', '/etc/postfix/mail.crt', '/srv/copy/web.pem']);
    expect((await t.api.get(`/api/v1/discovered-certificates?agent_id=${b.id}`)).body.total).toBe(1);
    expect((await t.api.get('/api/v1/discovered-certificates?status=Lost')).status).toBe(400);
    expect((await t.api.get('/api/v1/discovered-certificates?sort=-not_after&expires_before=2999-01-01T00:00:00Z')).body.total).toBe(4);
    const summary = await t.api.get('/api/v1/discovery-summary');
    expect(summary.body).toEqual({ total: 4, by_status: { Unmanaged: 4, Managed: 0, Dismissed: 0 }, agents: 2 });
  });

  it('claims (links to a managed certificate) and dismisses, audited; triage survives re-reports', async () => {
    await t.kernel.db.knex('managed_certificates').insert({ id: 'mc-web', name: 'web', common_name: 'web.example.com' });
    const web1 = await find(a.id, '/etc/nginx/web.pem');
    const mailRow = await find(a.id, '/etc/postfix/mail.crt');

    const unknown = await t.api.post(`/api/v1/discovered-certificates/${web1.id}/claim`, { certificate_id: 'mc-nope' });
    expect(unknown.status).toBe(422);
    expect((await find(a.id, '/etc/nginx/web.pem')).status).toBe('Unmanaged');
    expect((await t.api.post('/api/v1/discovered-certificates/dc-missing/claim', { certificate_id: 'mc-web' })).status).toBe(404);

    const claimed = await t.api.post(`/api/v1/discovered-certificates/${web1.id}/claim`, { certificate_id: 'mc-web' });
    expect(claimed.status, claimed.text).toBe(200);
    expect(claimed.body).toMatchObject({ id: web1.id, status: 'Managed', managed_certificate_id: 'mc-web' });
    const dismissed = await t.api.post(`/api/v1/discovered-certificates/${mailRow.id}/dismiss`);
    expect(dismissed.body).toMatchObject({ status: 'Dismissed', managed_certificate_id: null });

    await report(a, { certificates: [{ source_path: '/etc/nginx/web.pem', certificate_pem: web }, { source_path: '/etc/postfix/mail.crt', certificate_pem: mail }] });
    expect((await t.api.get(`/api/v1/discovered-certificates/${web1.id}`)).body).toMatchObject({ status: 'Managed', managed_certificate_id: 'mc-web' });
    expect((await t.api.get(`/api/v1/discovered-certificates/${mailRow.id}`)).body.status).toBe('Dismissed');
    expect((await t.api.get('/api/v1/discovered-certificates?status=Managed')).body.data.map((r: { id: string }) => r.id)).toEqual([web1.id]);

    const audit = await t.api.get(`/api/v1/audit?resource_type=discovered_certificate&category=lifecycle`);
    expect(audit.body.data.map((e: { action: string }) => e.action).sort()).toEqual(['discovered_certificate_claimed', 'discovered_certificate_dismissed']);
  });

  it('reads need discovery.read, triage needs discovery.manage', async () => {
    const viewer = t.api.withKey(await t.keyWithRole('viewer'));
    const row = await find(b.id, '/etc/nginx/web.pem');
    expect((await viewer.get('/api/v1/discovered-certificates')).status).toBe(200);
    expect((await viewer.post(`/api/v1/discovered-certificates/${row.id}/dismiss`)).status).toBe(403);
    const auditor = t.api.withKey(await t.keyWithRole('auditor'));
    expect((await auditor.get('/api/v1/discovered-certificates')).status).toBe(403);
    const operator = t.api.withKey(await t.keyWithRole('operator'));
    expect((await operator.post(`/api/v1/discovered-certificates/${row.id}/dismiss`)).status).toBe(200);
  });
});
