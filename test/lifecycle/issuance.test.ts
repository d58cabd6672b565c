import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../plugins/runtime/test-pki.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions } from './cert-fixtures.js';
import { certRow, createCertificate, issuanceEnv, issuerCalls, runJob, seedIssuance, submitCsr, TEST_ISSUER_CA, versionsOf } from './issuance-support.js';

/**
 * The Issuance Flow in agent keygen mode, through the real job queue and the
 * fixture CA plugin in a worker: AwaitingCSR -> the agent's CSR -> Pending ->
 * issued -> stored, audited, deployments queued; and renewal.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('issuance (agent keygen)', () => {
  let t: TestKernel;
  let knex: Knex;
  let pki: TestPki;

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv() });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
    pki = makeTestPki();
  });
  afterAll(async () => {
    pki?.cleanup();
    await t?.stop();
  });

  const csrFor = (name: string, cn: string, sans?: string, key?: 'ec' | 'rsa' | 'ed25519') => pki.csr(name, { subject: `/CN=${cn}`, sans, key });

  it('issues from the agent\'s CSR, stores the version, activates the certificate and queues one deployment per target', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'shop.example.com', sans: ['www.shop.example.com'], agent_id: 'agent-1', target_ids: ['tgt-1', 'tgt-2', 'tgt-off'], profile_id: 'prof-ec' });
    expect(job).toMatchObject({ type: 'Issuance', status: 'AwaitingCSR', agent_id: 'agent-1' });
    expect(await t.kernel.jobs.drainOnce()).toBe(0);

    const csr = csrFor('shop', 'shop.example.com', 'DNS:shop.example.com,DNS:www.shop.example.com');
    await submitCsr(knex, job.id, csr);
    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Completed', attempts: 1, last_error: null });

    const [version] = await versionsOf(knex, id);
    expect(version).toMatchObject({ job_id: job.id, csr_pem: csr, key_algorithm: 'ECDSA', key_size: 256 });
    expect(done.result).toMatchObject({ version_id: version.id, serial_number: version.serial_number });
    const blocks = version.pem_chain.match(/-----BEGIN CERTIFICATE-----/g);
    expect(blocks).toHaveLength(2);
    // The stored leaf verifies against the issuing CA with openssl, and is for the agent's key.
    const leafFile = pki.write('shop-leaf.pem', version.pem_chain.split(/(?<=-----END CERTIFICATE-----\n)/)[0]);
    expect(pki.openssl(['verify', '-CAfile', TEST_ISSUER_CA, leafFile])).toContain('OK');
    const leaf = new crypto.X509Certificate(version.pem_chain);
    expect(leaf.checkPrivateKey(crypto.createPrivateKey(pki.openssl(['pkey', '-in', 'shop.key'])))).toBe(true);
    expect(leaf.subjectAltName).toBe('DNS:shop.example.com, DNS:www.shop.example.com');
    expect(leaf.fingerprint256.replace(/:/g, '').toLowerCase()).toBe(version.fingerprint_sha256);

    const cert = await certRow(knex, id);
    expect(cert).toMatchObject({
      status: 'Active', serial_number: version.serial_number, fingerprint_sha256: version.fingerprint_sha256, key_algorithm: 'ECDSA', key_size: 256, last_renewal_at: null,
    });
    expect(new Date(cert.expires_at).getTime()).toBe(new Date(version.not_after).getTime());
    expect(new Date(cert.not_before).getTime()).toBe(new Date(version.not_before).getTime());

    // Deployments: the enabled targets only, each routed to its target's agent.
    const deployments = await knex('jobs').where({ certificate_id: id, type: 'Deployment' }).orderBy('target_id');
    expect(deployments.map((d) => ({ target_id: d.target_id, agent_id: d.agent_id, status: d.status, payload: d.payload }))).toEqual([
      { target_id: 'tgt-1', agent_id: 'agent-1', status: 'Pending', payload: { version_id: version.id } },
      { target_id: 'tgt-2', agent_id: 'agent-2', status: 'Pending', payload: { version_id: version.id } },
    ]);
    // Ids made by the database look like every other job id (db/ids.ts newIdSql), one each.
    expect(deployments.map((d) => d.id)).toEqual([expect.stringMatching(/^job-[0-9a-f]{16}$/), expect.stringMatching(/^job-[0-9a-f]{16}$/)]);
    expect(new Set(deployments.map((d) => d.id)).size).toBe(2);
    // The kernel never runs deployment jobs itself.
    await t.kernel.jobs.drainOnce();
    expect((await knex('jobs').where({ certificate_id: id, type: 'Deployment', status: 'Pending' })).length).toBe(2);

    const issued = await knex('audit_events').where({ resource_id: id, action: 'certificate_issued' }).first();
    expect(issued.details).toMatchObject({ version_id: version.id, job_id: job.id, from: 'Pending', to: 'Active', serial_number: version.serial_number, key_source: 'csr', ekus: ['serverAuth', 'clientAuth'] });
    expect(issued.details.deployment_job_ids.sort()).toEqual(deployments.map((d) => d.id).sort());
    for (const d of deployments) expect(await auditActions(knex, d.id)).toEqual(['job_created']);
    expect(await knex('notifications').where({ certificate_id: id, type: 'RenewalSuccess' })).toHaveLength(1);

    // The issuer was asked with the certificate's names and the profile's EKUs.
    const [call] = await issuerCalls(knex, id);
    expect(call).toMatchObject({ method: 'issue', request: { certificateId: id, commonName: 'shop.example.com', sans: ['shop.example.com', 'www.shop.example.com'], profile: { id: 'prof-ec', maxTtlSeconds: null, ekus: ['serverAuth', 'clientAuth'] } } });

    const api = await t.api.get(`/api/v1/certificates/${id}/versions`);
    expect(api.status).toBe(200);
    expect(api.body.data).toHaveLength(1);
    expect(api.body.data[0]).toMatchObject({ id: version.id, serial_number: version.serial_number, fingerprint_sha256: version.fingerprint_sha256, key_algorithm: 'ECDSA' });
  });

  it('renews: RenewalInProgress -> Active, a second version, renew() with the previous serial, last_renewal_at set', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'renew.example.com', agent_id: 'agent-1', target_ids: ['tgt-1'] });
    await submitCsr(knex, job.id, csrFor('renew1', 'renew.example.com'));
    expect((await runJob(t, job.id)).status).toBe('Completed');
    const first = await certRow(knex, id);

    const res = await t.api.post(`/api/v1/certificates/${id}/renew`);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ type: 'Renewal', status: 'AwaitingCSR' });
    expect((await certRow(knex, id)).status).toBe('RenewalInProgress');
    // An agent may repeat the CN as a SAN or not: both ask for the same names.
    await submitCsr(knex, res.body.id, csrFor('renew2', 'renew.example.com', 'DNS:renew.example.com'));
    expect(await runJob(t, res.body.id)).toMatchObject({ status: 'Completed' });

    const cert = await certRow(knex, id);
    expect(cert.status).toBe('Active');
    expect(cert.serial_number).not.toBe(first.serial_number);
    expect(cert.last_renewal_at).not.toBeNull();
    expect(await versionsOf(knex, id)).toHaveLength(2);
    const calls = await issuerCalls(knex, id);
    expect(calls.map((c) => c.method)).toEqual(['issue', 'renew']);
    expect(calls[1].request.previousSerialNumber).toBe(first.serial_number);
    const renewed = await knex('audit_events').where({ resource_id: id, action: 'certificate_renewed' }).first();
    expect(renewed.details).toMatchObject({ from: 'RenewalInProgress', to: 'Active', job_id: res.body.id });
    expect(await knex('jobs').where({ certificate_id: id, type: 'Deployment' })).toHaveLength(2);
  });

  it('a failed renewal leaves the stored version and marks the certificate Failed with a critical RenewalFailure', async () => {
    await knex('issuers').insert({ id: 'iss-switch', name: 'Test CA (switch)', type: 'test-ca-issuer', config: JSON.stringify({ behaviour: 'issue' }) });
    const { id, job } = await createCertificate(t, { common_name: 'turns-bad.example.com', agent_id: 'agent-1', issuer_id: 'iss-switch' });
    await submitCsr(knex, job.id, csrFor('bad1', 'turns-bad.example.com'));
    expect((await runJob(t, job.id)).status).toBe('Completed');
    await knex('issuers').where({ id: 'iss-switch' }).update({ config: JSON.stringify({ behaviour: 'deny' }) });
    const renewal = await t.api.post(`/api/v1/certificates/${id}/renew`);
    await submitCsr(knex, renewal.body.id, csrFor('bad2', 'turns-bad.example.com'));
    expect(await runJob(t, renewal.body.id)).toMatchObject({ status: 'Failed', attempts: 1 });
    expect(await versionsOf(knex, id)).toHaveLength(1);
    expect((await certRow(knex, id)).status).toBe('Failed');
    const failed = await knex('audit_events').where({ resource_id: id, action: 'certificate_renewal_failed' }).first();
    expect(failed.details).toMatchObject({ job_id: renewal.body.id, from: 'RenewalInProgress', to: 'Failed' });
    expect(await knex('notifications').where({ certificate_id: id, type: 'RenewalFailure' }).select('severity')).toEqual([{ severity: 'critical' }]);
  });

  it('a job retried after a crash between store and completion stores no second version and does not ask the CA again', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'crash.example.com', agent_id: 'agent-1', target_ids: ['tgt-1'] });
    await submitCsr(knex, job.id, csrFor('crash', 'crash.example.com'));
    // Run the handler the way a replica would, then "die" before the job is marked done.
    const [claimed] = await t.kernel.jobs.claim(1, ['Issuance']);
    expect(claimed.id).toBe(job.id);
    const { issuanceJobHandler } = await import('../../kernel/src/lifecycle/issuance-job.js');
    const outcome = await issuanceJobHandler(t.kernel)(claimed, { signal: new AbortController().signal, log: t.kernel.log });
    expect(outcome).toMatchObject({ status: 'completed' });
    expect((await knex('jobs').where({ id: job.id }).first()).status).toBe('Running');
    await knex('jobs').where({ id: job.id }).update({ lease_expires_at: new Date(Date.now() - 1000) });
    expect(await t.kernel.jobs.reap()).toMatchObject({ requeued: 1 });

    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Completed', attempts: 2 });
    expect(done.result).toMatchObject({ recovered: true });
    expect(await versionsOf(knex, id)).toHaveLength(1);
    expect(await issuerCalls(knex, id)).toHaveLength(1);
    expect(await knex('jobs').where({ certificate_id: id, type: 'Deployment' })).toHaveLength(1);
  });

  it('a store by a replica that lost the lease is refused', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'fenced.example.com', agent_id: 'agent-1' });
    await submitCsr(knex, job.id, csrFor('fenced', 'fenced.example.com'));
    const [claimed] = await t.kernel.jobs.claim(1, ['Issuance']);
    // Another replica took the job over meanwhile.
    await knex('jobs').where({ id: job.id }).update({ lease_owner: 'someone-else' });
    const { issuanceJobHandler } = await import('../../kernel/src/lifecycle/issuance-job.js');
    await expect(issuanceJobHandler(t.kernel)(claimed, { signal: new AbortController().signal, log: t.kernel.log })).rejects.toThrow(/no longer held/);
    expect(await versionsOf(knex, id)).toHaveLength(0);
    expect((await certRow(knex, id)).status).toBe('Pending');
  });

  it('follows a pending CA order: retry_later keeps the order id, checkOrder completes it without spending attempts', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'slow.example.com', agent_id: 'agent-1', issuer_id: 'iss-pending' });
    await submitCsr(knex, job.id, csrFor('slow', 'slow.example.com'));
    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Completed', attempts: 1 });
    expect(done.payload.order_id).toMatch(/^order-/);
    const calls = await issuerCalls(knex, id);
    expect(calls.map((c) => c.method)).toEqual(['issue', 'checkOrder']);
    expect(calls[1].request.orderId).toBe(done.payload.order_id);
    expect(await versionsOf(knex, id)).toHaveLength(1);
    expect((await certRow(knex, id)).status).toBe('Active');
  });

  it('retries a retryable CA failure and then issues', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'flaky.example.com', agent_id: 'agent-1', issuer_id: 'iss-flaky' });
    await submitCsr(knex, job.id, csrFor('flaky', 'flaky.example.com'));
    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Completed', attempts: 2 });
    expect(await auditActions(knex, job.id)).toContain('job_retry_scheduled');
    expect(await versionsOf(knex, id)).toHaveLength(1);
    expect((await certRow(knex, id)).status).toBe('Active');
  });

  it('a retryable failure on the last attempt is final: certificate Failed', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'last-try.example.com', agent_id: 'agent-1', issuer_id: 'iss-flaky' });
    await knex('jobs').where({ id: job.id }).update({ max_attempts: 1 });
    await submitCsr(knex, job.id, csrFor('last-try', 'last-try.example.com'));
    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Failed', attempts: 1 });
    expect(done.last_error).toMatch(/briefly unavailable/);
    expect((await certRow(knex, id)).status).toBe('Failed');
  });

  it.each([
    ['iss-deny', /denied the request: the test CA refuses/],
    ['iss-fail', /failed: the test CA is broken for good/],
    ['iss-wrong-key', /unusable certificate: the issued certificate is not for the CSR's public key/],
  ])('%s: fails at once, no version, certificate Failed with a RenewalFailure', async (issuer, message) => {
    const { id, job } = await createCertificate(t, { common_name: `${issuer}.example.com`, agent_id: 'agent-1', issuer_id: issuer, target_ids: ['tgt-1'] });
    await submitCsr(knex, job.id, csrFor(issuer, `${issuer}.example.com`));
    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Failed', attempts: 1 });
    expect(done.last_error).toMatch(message);
    expect(await versionsOf(knex, id)).toHaveLength(0);
    expect(await knex('jobs').where({ certificate_id: id, type: 'Deployment' })).toHaveLength(0);
    expect((await certRow(knex, id)).status).toBe('Failed');
    expect(await knex('notifications').where({ certificate_id: id, type: 'RenewalFailure' })).toHaveLength(1);
    expect(await auditActions(knex, id)).toContain('certificate_issuance_failed');
  });

  it('issues through the Local CA plugin: the certificate verifies against the chain it stored', async () => {
    await knex('issuers').insert({ id: 'iss-lca', name: 'Local CA', type: 'local-ca', config: JSON.stringify({ mode: 'self-signed' }) });
    const { id, job } = await createCertificate(t, { common_name: 'lca.example.com', sans: ['10.1.2.3'], agent_id: 'agent-1', issuer_id: 'iss-lca', profile_id: 'prof-day' });
    await submitCsr(knex, job.id, csrFor('lca', 'lca.example.com', 'IP:10.1.2.3'));
    const done = await runJob(t, job.id);
    expect(done.last_error).toBeNull();
    expect(done.status).toBe('Completed');
    const [version] = await versionsOf(knex, id);
    const [leafPem, ...chain] = version.pem_chain.split(/(?<=-----END CERTIFICATE-----\n)/);
    expect(chain.length).toBeGreaterThan(0);
    const caFile = pki.write('lca-chain.pem', chain.join(''));
    expect(pki.openssl(['verify', '-CAfile', caFile, pki.write('lca-leaf.pem', leafPem)])).toContain('OK');
    const leaf = new crypto.X509Certificate(leafPem);
    expect(leaf.subjectAltName).toBe('DNS:lca.example.com, IP Address:10.1.2.3');
    // The profile's one-day cap reached the CA.
    expect(new Date(leaf.validTo).getTime()).toBeLessThanOrEqual(Date.now() + 86_400_000);
    expect((await certRow(knex, id)).status).toBe('Active');
  });

  it('a certificate without an agent in agent keygen mode has no CSR: refused with the reason', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'orphan.example.com' });
    expect(job.status).toBe('Pending');
    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Failed', attempts: 1 });
    expect(done.last_error).toMatch(/no CSR: keys are made on agents/);
    expect((await certRow(knex, id)).status).toBe('Failed');
  });
});
