import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revocationOf } from '../../kernel/src/revocation/revocation-services.js';
import { CA_FIXTURE_PLUGINS_DIR, scratch } from '../ca/ca-support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { insertMany, issueManaged, raw, run, write, type Issued } from './revocation-support.js';

const FLEET = 10_000;

describe.skipIf(POSTGRES_UNAVAILABLE)('Bulk revocation', () => {
  let t: TestKernel;
  const tmp = scratch();
  let template: Issued;
  let rootFile: string;
  const db = () => t.kernel.db.knex;

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_PLUGIN_DIRS: CA_FIXTURE_PLUGINS_DIR } });
    expect((await t.api.post('/api/v1/issuers', { id: 'iss-fleet', name: 'iss-fleet', type: 'local-ca', config: {} })).status).toBe(201);
    expect((await t.api.post('/api/v1/teams', { id: 'team-a', name: 'Team A' })).status).toBe(201);
    expect((await t.api.post('/api/v1/owners', { id: 'owner-a', name: 'A', email: 'a@example.test', team_id: 'team-a' })).status).toBe(201);
    template = await issueManaged(t, tmp.dir, 'iss-fleet');
    rootFile = write(tmp.dir, 'root.pem', template.chainPem[0]);
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  it('needs at least one criterion and a known reason', async () => {
    expect((await t.api.post('/api/v1/certificates/bulk-revoke', { reason: 'keyCompromise' })).status).toBe(400);
    expect((await t.api.post('/api/v1/certificates/bulk-revoke', { issuer_id: 'iss-fleet', reason: 'nope' })).status).toBe(400);
    expect((await t.api.post('/api/v1/certificates/bulk-revoke', { issuer_id: 'iss-fleet', colour: 'red' })).status).toBe(400);
    expect(await db()('certificate_revocations').count({ n: '*' }).then((r) => Number(r[0].n))).toBe(0);
  });

  it('revokes by team and by explicit ids, reporting what it could not revoke', async () => {
    const owned = await issueManaged(t, tmp.dir, 'iss-fleet', { ownerId: 'owner-a' });
    const other = await issueManaged(t, tmp.dir, 'iss-fleet');
    const res = await t.api.post('/api/v1/certificates/bulk-revoke', { team_id: 'team-a', reason: 'affiliationChanged' });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ matched_count: 1, affected_count: 1, failed: [], status: 'Completed', criteria: { reason: 'affiliationChanged', team_id: 'team-a' } });
    expect(res.body.jobs).toEqual([expect.objectContaining({ certificate_id: owned.certId, status: 'Completed' })]);

    const ids = await t.api.post('/api/v1/certificates/bulk-revoke', { certificate_ids: [owned.certId, other.certId, 'mc-missing'] });
    expect(ids.status).toBe(202);
    expect(ids.body).toMatchObject({ matched_count: 2, affected_count: 1, criteria: { reason: 'unspecified' } });
    expect(ids.body.failed.map((f: { certificate_id: string; code: string }) => [f.certificate_id, f.code]).sort()).toEqual([[owned.certId, 'already_revoked'], ['mc-missing', 'not_found']].sort());
    expect((await t.api.get(`/api/v1/certificates/${other.certId}`)).body.status).toBe('Revoked');
  });

  it(`revokes ${FLEET} certificates with an accurate report, one audit event, and a CRL listing them after one cycle`, async () => {
    const ids = await insertMany(t, 'iss-fleet', template, FLEET, 'mc-fleet');
    // Some are already revoked: reported, not revoked twice.
    const pre = await t.api.post('/api/v1/certificates/bulk-revoke', { certificate_ids: ids.slice(0, 25), reason: 'superseded' });
    expect(pre.body.affected_count).toBe(25);

    const started = Date.now();
    const res = await t.api.post('/api/v1/certificates/bulk-revoke', { issuer_id: 'iss-fleet', reason: 'keyCompromise' });
    const ms = Date.now() - started;
    expect(res.status, res.text).toBe(202);
    // The fleet, plus the template certificate; the 25 and the earlier two were revoked already.
    expect(res.body.matched_count).toBe(FLEET + 3);
    expect(res.body.affected_count).toBe(FLEET - 25 + 1);
    expect(res.body.failed_count).toBe(27);
    expect(res.body.failed.every((f: { code: string }) => f.code === 'already_revoked')).toBe(true);
    expect(res.body.jobs).toHaveLength(FLEET - 24);
    expect(res.body.status).toBe('Completed');
    console.log(`bulk revoke of ${res.body.affected_count} certificates took ${ms} ms`);

    const report = await t.api.get(`/api/v1/revocations/bulk/${res.body.bulk_id}`);
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ total: FLEET - 24, by_status: { Completed: FLEET - 24 }, status: 'Completed', failed: [] });
    expect((await t.api.get('/api/v1/revocations/bulk/bulk-rev-unknown')).status).toBe(404);

    const audit = await db()('audit_events').where({ action: 'bulk_revocation_initiated', resource_id: res.body.bulk_id });
    expect(audit).toHaveLength(1);
    expect(audit[0].actor_type).not.toBe('system');
    expect(audit[0].details).toMatchObject({ criteria: { issuer_id: 'iss-fleet' }, reason: 'keyCompromise', matched: FLEET + 3, affected: FLEET - 24 });
    const statuses = await db()('managed_certificates').where('id', 'like', 'mc-fleet-%').select('status').count({ n: '*' }).groupBy('status');
    expect(statuses.map((s) => [s.status, Number(s.n)])).toEqual([['Revoked', FLEET]]);

    await revocationOf(t.kernel).crl.runCycle();
    const crl = await raw(t, 'GET', '/.well-known/pki/crl/iss-fleet');
    expect(crl.status).toBe(200);
    const derFile = write(tmp.dir, 'fleet.der', crl.body);
    expect((await run(['crl', '-inform', 'DER', '-in', derFile, '-CAfile', rootFile, '-noout'])).out).toContain('verify OK');
    const text = (await run(['crl', '-inform', 'DER', '-in', derFile, '-noout', '-text'])).out;
    expect(text.match(/Serial Number: /g)).toHaveLength(FLEET + 3);
    expect(text.match(/Key Compromise/g)).toHaveLength(FLEET - 24);
  }, 180_000);
});
