import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../plugins/runtime/test-pki.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions } from './cert-fixtures.js';
import { certRow, createCertificate, issuanceEnv, issuerCalls, runJob, seedIssuance, submitCsr, versionsOf } from './issuance-support.js';

const DAY = 86_400_000;

/** Profiles and policies on the issuance path: what is refused, capped, recorded. */
describe.skipIf(POSTGRES_UNAVAILABLE)('issuance rules (profiles and policies)', () => {
  let t: TestKernel;
  let knex: Knex;
  let pki: TestPki;
  let n = 0;

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv() });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
    await knex('agent_groups').insert({ id: 'ag-strict', name: 'strict' });
    await knex('agent_group_members').insert({ agent_group_id: 'ag-strict', agent_id: 'agent-2' });
    await knex('policies').insert([
      { id: 'pol-rsa-only', name: 'RSA only (strict group)', type: 'key_algorithm', config: JSON.stringify({ allowed_algorithms: ['RSA'] }), severity: 'Error', agent_group_id: 'ag-strict' },
      { id: 'pol-30d', name: '30 days max (strict group)', type: 'max_lifetime', config: JSON.stringify({ max_days: 30 }), severity: 'Critical', agent_group_id: 'ag-strict' },
      { id: 'pol-names', name: 'example.com names', type: 'san_pattern', config: JSON.stringify({ patterns: ['\\.example\\.com$'] }), severity: 'Warning' },
      { id: 'pol-off', name: 'disabled', type: 'issuer_restriction', config: JSON.stringify({ allowed_issuer_ids: ['iss-nope'] }), severity: 'Critical', enabled: false },
    ]);
    pki = makeTestPki();
  });
  afterAll(async () => {
    pki?.cleanup();
    await t?.stop();
  });

  /** Creates a certificate, sends the CSR the test gives (or a matching EC one) and runs the job. */
  async function issue(body: Record<string, unknown>, csr?: { subject?: string; sans?: string; key?: 'ec' | 'rsa' | 'ed25519' }, payload?: Record<string, unknown>) {
    const { id, job } = await createCertificate(t, { agent_id: 'agent-1', target_ids: ['tgt-1'], ...body });
    const cert = await certRow(knex, id);
    const pem = pki.csr(`k${++n}`, { subject: csr?.subject ?? `/CN=${cert.common_name}`, sans: csr?.sans, key: csr?.key });
    await submitCsr(knex, job.id, pem);
    if (payload) await knex('jobs').where({ id: job.id }).update({ payload: knex.raw('payload || ?::jsonb', [JSON.stringify(payload)]) });
    return { id, job: await runJob(t, job.id) };
  }

  async function expectRefused(id: string, job: { status: string; attempts: number; last_error: string | null }, message: RegExp) {
    expect(job).toMatchObject({ status: 'Failed', attempts: 1 });
    expect(job.last_error).toMatch(message);
    expect(await versionsOf(knex, id)).toHaveLength(0);
    expect(await knex('jobs').where({ certificate_id: id, type: 'Deployment' })).toHaveLength(0);
    expect(await issuerCalls(knex, id)).toEqual([]);
    expect((await certRow(knex, id)).status).toBe('Failed');
  }

  it.each([
    ['a key type the profile does not allow', { profile_id: 'prof-ec' }, { key: 'rsa' as const }, /key type RSA is not allowed by profile prof-ec \(allowed: ECDSA >= 256\)/],
    ['a key below the profile minimum', { profile_id: 'prof-rsa3072' }, { key: 'rsa' as const }, /key RSA 2048 is below profile prof-rsa3072's minimum of 3072 bits/],
    ['an e-mail SAN without emailProtection', { profile_id: 'prof-ec', sans: ['alice@example.com'] }, { sans: 'email:alice@example.com' }, /e-mail SANs need the emailProtection EKU, which profile prof-ec does not allow/],
    ['a CSR asking for an extra name', {}, { sans: 'DNS:evil.example.net' }, /asks for names the certificate does not have: evil\.example\.net/],
    ['a CSR leaving a name out', { sans: ['api.example.com'] }, {}, /leaves out names of the certificate: api\.example\.com/],
    ['a CSR with another CN', {}, { subject: '/CN=other.example.com' }, /CSR's CN "other\.example\.com" is not the certificate's common name/],
    ['names outside the profile patterns', { profile_id: 'prof-pattern', common_name: 'x.example.org' }, {}, /x\.example\.org match none of profile prof-pattern's required SAN patterns/],
  ])('refuses %s: job Failed with the reason, nothing issued', async (_what, body, csr, message) => {
    const { id, job } = await issue(body, csr);
    await expectRefused(id, job, message);
    expect(await knex('notifications').where({ certificate_id: id, type: 'RenewalFailure' })).toHaveLength(1);
  });

  it('refuses a certificate whose profile was disabled after the job was queued', async () => {
    await knex('certificate_profiles').insert({ id: 'prof-soon-off', name: 'soon off' });
    const { id, job } = await createCertificate(t, { agent_id: 'agent-1', profile_id: 'prof-soon-off' });
    await knex('certificate_profiles').where({ id: 'prof-soon-off' }).update({ enabled: false });
    await submitCsr(knex, job.id, pki.csr(`k${++n}`, { subject: `/CN=${(await certRow(knex, id)).common_name}` }));
    await expectRefused(id, await runJob(t, job.id), /profile prof-soon-off is disabled/);
  });

  it('refuses a certificate whose issuer was disabled after the job was queued', async () => {
    await knex('issuers').insert({ id: 'iss-soon-off', name: 'soon off', type: 'test-ca-issuer', config: JSON.stringify({}) });
    const { id, job } = await createCertificate(t, { agent_id: 'agent-1', issuer_id: 'iss-soon-off' });
    await knex('issuers').where({ id: 'iss-soon-off' }).update({ enabled: false });
    await submitCsr(knex, job.id, pki.csr(`k${++n}`, { subject: `/CN=${(await certRow(knex, id)).common_name}` }));
    await expectRefused(id, await runJob(t, job.id), /issuer iss-soon-off is disabled/);
  });

  it('caps a requested notAfter at the profile max TTL, and passes the cap to the issuer', async () => {
    const { id, job } = await issue({ profile_id: 'prof-day' }, {}, { not_after: new Date(Date.now() + 30 * DAY).toISOString() });
    expect(job.status).toBe('Completed');
    const [v] = await versionsOf(knex, id);
    const life = new Date(v.not_after).getTime() - new Date(v.not_before).getTime();
    expect(life).toBeLessThanOrEqual(DAY);
    expect(life).toBeGreaterThan(DAY - 60_000);
    const [call] = await issuerCalls(knex, id);
    expect(call.request.profile.maxTtlSeconds).toBe(86_400);
    expect(Date.parse(call.request.notAfter)).toBeLessThanOrEqual(Date.now() + DAY);
    const ev = await knex('audit_events').where({ resource_id: id, action: 'certificate_issued' }).first();
    expect(ev.details.ttl_capped).toBe(true);
  });

  it('issues S/MIME certificates with emailProtection for e-mail names', async () => {
    const { id, job } = await issue({ profile_id: 'prof-smime', common_name: 'alice@example.com' }, { subject: '/CN=alice@example.com', sans: 'email:alice@example.com' });
    expect(job.status).toBe('Completed');
    const [v] = await versionsOf(knex, id);
    const leaf = new crypto.X509Certificate(v.pem_chain);
    expect(leaf.subjectAltName).toBe('email:alice@example.com');
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.4']);
  });

  it('accepts Ed25519 and RSA keys when the certificate has no profile', async () => {
    for (const key of ['ed25519', 'rsa'] as const) {
      const { id, job } = await issue({}, { key });
      expect(job.status).toBe('Completed');
      expect((await certRow(knex, id)).key_algorithm).toBe(key === 'rsa' ? 'RSA' : 'Ed25519');
    }
  });

  it('an Error policy in scope blocks: violation recorded and notified, job Failed, nothing issued; out of scope it does not apply', async () => {
    const { id, job } = await issue({ agent_id: 'agent-2', target_ids: ['tgt-2'] });
    await expectRefused(id, job, /blocked by policy: Policy RSA only \(strict group\) \(key_algorithm\): key algorithm ECDSA is not one of RSA \[Error\]/);
    const violations = await knex('policy_violations').where({ certificate_id: id });
    expect(violations).toMatchObject([{ policy_id: 'pol-rsa-only', severity: 'Error', resolved_at: null }]);
    const notes = await knex('notifications').where({ certificate_id: id, type: 'PolicyViolation' });
    expect(notes).toHaveLength(1);
    expect(notes[0].message).toMatch(/The issuance was refused/);
    expect(await auditActions(knex, id)).toContain('certificate_policy_violation');

    const outside = await issue({ agent_id: 'agent-1' });
    expect(outside.job.status).toBe('Completed');
    expect(await knex('policy_violations').where({ certificate_id: outside.id })).toHaveLength(0);
  });

  it('a Critical max_lifetime policy blocks a longer request, and shapes a request that names no validity', async () => {
    const long = await issue({ agent_id: 'agent-2', target_ids: ['tgt-2'] }, { key: 'rsa' }, { not_after: new Date(Date.now() + 60 * DAY).toISOString() });
    await expectRefused(long.id, long.job, /lifetime of 60(\.0)? days exceeds the maximum of 30 days \[Critical\]/);

    const shaped = await issue({ agent_id: 'agent-2', target_ids: ['tgt-2'] }, { key: 'rsa' });
    expect(shaped.job.status).toBe('Completed');
    const [v] = await versionsOf(knex, shaped.id);
    expect(new Date(v.not_after).getTime() - new Date(v.not_before).getTime()).toBeLessThanOrEqual(30 * DAY);
    expect(await knex('policy_violations').where({ certificate_id: shaped.id })).toHaveLength(0);
  });

  it('a Warning policy records one open violation and issues anyway; a renewal does not duplicate it', async () => {
    const { id, job } = await issue({ common_name: 'legacy.example.net' });
    expect(job.status).toBe('Completed');
    const [violation] = await knex('policy_violations').where({ certificate_id: id });
    expect(violation).toMatchObject({ policy_id: 'pol-names', severity: 'Warning', resolved_at: null });
    expect(violation.message).toMatch(/legacy\.example\.net match none of the allowed patterns/);
    const ev = await knex('audit_events').where({ resource_id: id, action: 'certificate_issued' }).first();
    expect(ev.details.policy_violation_ids).toEqual([violation.id]);
    expect(await knex('notifications').where({ certificate_id: id, type: 'PolicyViolation' })).toHaveLength(1);

    const renewal = await t.api.post(`/api/v1/certificates/${id}/renew`);
    await submitCsr(knex, renewal.body.id, pki.csr(`k${++n}`, { subject: '/CN=legacy.example.net' }));
    expect((await runJob(t, renewal.body.id)).status).toBe('Completed');
    expect(await knex('policy_violations').where({ certificate_id: id })).toHaveLength(1);
    expect(await knex('notifications').where({ certificate_id: id, type: 'PolicyViolation' })).toHaveLength(1);

    // Once the policy passes (it now allows .example.net), the next issuance resolves the violation.
    await knex('policies').where({ id: 'pol-names' }).update({ config: JSON.stringify({ patterns: ['\\.example\\.(com|net)$'] }) });
    const again = await t.api.post(`/api/v1/certificates/${id}/renew`);
    await submitCsr(knex, again.body.id, pki.csr(`k${++n}`, { subject: '/CN=legacy.example.net' }));
    expect((await runJob(t, again.body.id)).status).toBe('Completed');
    expect((await knex('policy_violations').where({ certificate_id: id }).first()).resolved_at).not.toBeNull();
    await knex('policies').where({ id: 'pol-names' }).update({ config: JSON.stringify({ patterns: ['\\.example\\.com$'] }) });
  });
});
