import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverKeyForVersion } from '../../kernel/src/lifecycle/issuance-server-key.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { certRow, createCertificate, issuanceEnv, runJob, seedIssuance, versionsOf } from './issuance-support.js';

/** CERTCTL_KEYGEN_MODE=server (demo only): the kernel makes the key, keeps it sealed, never shows it. */
describe.skipIf(POSTGRES_UNAVAILABLE)('issuance (server keygen)', () => {
  let t: TestKernel;
  let knex: Knex;

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv({ CERTCTL_KEYGEN_MODE: 'server' }) });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
  });
  afterAll(async () => { await t?.stop(); });

  it('generates an RSA-2048 key and CSR, stores the key encrypted for the version, and never returns it', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'demo.example.com', sans: ['10.0.0.7'], agent_id: 'agent-1', target_ids: ['tgt-1'] });
    expect(job).toMatchObject({ status: 'Pending', agent_id: null });
    const done = await runJob(t, job.id);
    expect(done).toMatchObject({ status: 'Completed', attempts: 1 });

    const [version] = await versionsOf(knex, id);
    expect(version).toMatchObject({ key_algorithm: 'RSA', key_size: 2048, job_id: job.id });
    expect(version.csr_pem).toBe(done.payload.csr_pem);
    const keys = await knex('certificate_keys').where({ certificate_id: id });
    expect(keys).toMatchObject([{ job_id: job.id, version_id: version.id, key_algorithm: 'RSA', key_size: 2048 }]);
    expect(keys[0].encrypted_key).not.toMatch(/PRIVATE KEY/);

    const pem = await serverKeyForVersion(t.kernel, version.id);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const leaf = new crypto.X509Certificate(version.pem_chain);
    expect(leaf.checkPrivateKey(crypto.createPrivateKey(pem!))).toBe(true);
    expect(leaf.subjectAltName).toBe('DNS:demo.example.com, IP Address:10.0.0.7');
    expect((await certRow(knex, id))).toMatchObject({ status: 'Active', key_algorithm: 'RSA', key_size: 2048 });

    const issued = await knex('audit_events').where({ resource_id: id, action: 'certificate_issued' }).first();
    expect(issued.details.key_source).toBe('server');
    const deployments = await knex('jobs').where({ certificate_id: id, type: 'Deployment' });
    expect(deployments).toMatchObject([{ target_id: 'tgt-1', agent_id: 'agent-1', payload: { version_id: version.id } }]);

    // The key is in no API answer and no audit row.
    const body = crypto.createPrivateKey(pem!).export({ type: 'pkcs8', format: 'der' }).toString('base64').slice(40, 80);
    for (const path of [`/api/v1/certificates/${id}`, `/api/v1/certificates/${id}/versions`, `/api/v1/certificates/${id}/jobs`, `/api/v1/jobs/${job.id}`, '/api/v1/audit?per_page=200']) {
      const res = await t.api.get(path);
      expect(res.status, path).toBe(200);
      expect(res.text).not.toMatch(/PRIVATE KEY/);
      expect(res.text).not.toContain(body);
    }
    expect(JSON.stringify(await knex('audit_events').select('details'))).not.toContain(body);
  });

  it('keeps one key per job across a pending CA order and a retried attempt', async () => {
    for (const issuer of ['iss-pending', 'iss-flaky']) {
      const { id, job } = await createCertificate(t, { common_name: `${issuer}.example.com`, issuer_id: issuer });
      expect(await runJob(t, job.id)).toMatchObject({ status: 'Completed' });
      const [version] = await versionsOf(knex, id);
      const keys = await knex('certificate_keys').where({ certificate_id: id });
      expect(keys).toHaveLength(1);
      expect(keys[0].version_id).toBe(version.id);
      const leaf = new crypto.X509Certificate(version.pem_chain);
      expect(leaf.checkPrivateKey(crypto.createPrivateKey((await serverKeyForVersion(t.kernel, version.id))!))).toBe(true);
    }
  });

  it('a renewal makes a new key for the new version', async () => {
    const { id, job } = await createCertificate(t, { common_name: 'rekey.example.com' });
    await runJob(t, job.id);
    const renewal = await t.api.post(`/api/v1/certificates/${id}/renew`);
    expect(renewal.body).toMatchObject({ type: 'Renewal', status: 'Pending' });
    expect(await runJob(t, renewal.body.id)).toMatchObject({ status: 'Completed' });
    const [v1, v2] = await versionsOf(knex, id);
    const k1 = await serverKeyForVersion(t.kernel, v1.id);
    const k2 = await serverKeyForVersion(t.kernel, v2.id);
    expect(k1).not.toBe(k2);
    expect(new crypto.X509Certificate(v2.pem_chain).checkPrivateKey(crypto.createPrivateKey(k2!))).toBe(true);
  });
});
