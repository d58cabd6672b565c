import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { expect } from 'vitest';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import type { IssuedRecord } from '../../kernel/src/lifecycle/issuance-store.js';
import type { TestKernel } from '../support/test-kernel.js';

/** The test CA issuer plugin (signs with a fixed test CA; its config picks pending / flaky / deny ...). */
export const TEST_ISSUER_DIR = fileURLToPath(new URL('../fixtures/plugins-runtime/test-ca-issuer/', import.meta.url));
export const TEST_ISSUER_CA = `${TEST_ISSUER_DIR}ca.crt`;

/** Kernel env for these tests: the fixture plugin, no scheduler (tests drain jobs themselves), fast retries. */
export const issuanceEnv = (extra: Record<string, string> = {}) => ({
  CERTCTL_SCHEDULER_ENABLED: 'false',
  CERTCTL_PLUGIN_DIRS: TEST_ISSUER_DIR,
  CERTCTL_JOB_BACKOFF: '10ms',
  ...extra,
});

/** Issuer rows of the fixture plugin, one per behaviour, plus profiles used across the tests. */
export async function seedIssuance(knex: Knex): Promise<void> {
  const behaviours = ['issue', 'pending', 'flaky', 'deny', 'fail', 'wrong-key'];
  await knex('issuers').insert(behaviours.map((b) => ({ id: `iss-${b}`, name: `Test CA (${b})`, type: 'test-ca-issuer', config: JSON.stringify({ behaviour: b }) })));
  await knex('certificate_profiles').insert([
    { id: 'prof-ec', name: 'ECDSA only', allowed_key_algorithms: JSON.stringify([{ algorithm: 'ECDSA', min_size: 256 }]), allowed_ekus: JSON.stringify(['serverAuth', 'clientAuth']) },
    { id: 'prof-rsa3072', name: 'RSA 3072+', allowed_key_algorithms: JSON.stringify([{ algorithm: 'RSA', min_size: 3072 }]) },
    { id: 'prof-day', name: 'One day', max_ttl_seconds: 86_400 },
    { id: 'prof-smime', name: 'S/MIME', allowed_ekus: JSON.stringify(['emailProtection']) },
    { id: 'prof-pattern', name: 'Only example.com', required_san_patterns: JSON.stringify(['^[a-z0-9.-]+\\.example\\.com$']) },
  ]);
  await knex('agents').insert([{ id: 'agent-1', name: 'web-1' }, { id: 'agent-2', name: 'web-2' }]);
  await knex('targets').insert([
    { id: 'tgt-1', name: 'nginx web-1', type: 'nginx', agent_id: 'agent-1' },
    { id: 'tgt-2', name: 'haproxy web-2', type: 'haproxy', agent_id: 'agent-2' },
    { id: 'tgt-off', name: 'disabled target', type: 'nginx', agent_id: 'agent-1', enabled: false },
  ]);
}

let seq = 0;

/** Creates a certificate through the API (so its job is made as in production) and returns it with its job. */
export async function createCertificate(t: TestKernel, body: Record<string, unknown>): Promise<{ id: string; job: JobRow }> {
  const name = `c${process.pid}-${++seq}`;
  const res = await t.api.post('/api/v1/certificates', { name, common_name: `${name}.example.com`, issuer_id: 'iss-issue', ...body });
  expect(res.status, res.text).toBe(201);
  const job = (await t.kernel.db.knex('jobs').where({ certificate_id: res.body.id }).orderBy('created_at', 'desc').first()) as JobRow;
  return { id: res.body.id, job };
}

/** What the agent's CSR route does (H3a): the CSR into the payload, AwaitingCSR -> Pending. */
export async function submitCsr(knex: Knex, jobId: string, csrPem: string): Promise<void> {
  const n = await knex('jobs').where({ id: jobId, status: 'AwaitingCSR' })
    .update({ status: 'Pending', payload: knex.raw('payload || ?::jsonb', [JSON.stringify({ csr_pem: csrPem })]), scheduled_at: knex.fn.now() });
  expect(n).toBe(1);
}

/** Runs jobs until this one is finished (retries come back after a short backoff). */
export async function runJob(t: TestKernel, jobId: string, timeoutMs = 20_000): Promise<JobRow> {
  const knex = t.kernel.db.knex;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await t.kernel.jobs.drainOnce();
    const job = (await knex('jobs').where({ id: jobId }).first()) as JobRow;
    if (['Completed', 'Failed', 'Cancelled'].includes(job.status) || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 15));
  }
}

/** The fixture plugin's notes of what the kernel asked it (method and request), per certificate. */
export async function issuerCalls(knex: Knex, certificateId: string): Promise<{ method: string; request: Record<string, any> }[]> {
  const row = (await knex('plugin_kv').where({ plugin_id: 'test-ca-issuer', key: `call:${certificateId}` }).first('value')) as { value: any } | undefined;
  return row?.value ?? [];
}

export const certRow = (knex: Knex, id: string) => knex('managed_certificates').where({ id }).first() as Promise<Record<string, any>>;
export const versionsOf = (knex: Knex, id: string) => knex('certificate_versions').where({ certificate_id: id }).orderBy('created_at') as Promise<Record<string, any>[]>;

/** A record as the issuance service hands it to the store (the store checks no PEM: the service parsed it before). */
export const issuedRecord = (certificateId: string, commonName: string, jobId: string | null = null): IssuedRecord => ({
  certificateId, commonName, type: 'Issuance', jobId, csrPem: 'csr', serverKey: false, issuerId: 'iss-issue', profileId: null, policy: null,
  leaf: {
    pemChain: '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n', serialNumber: crypto.randomBytes(8).toString('hex'),
    fingerprintSha256: crypto.randomBytes(32).toString('hex'), notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), keyAlgorithm: 'ECDSA', keySize: 256,
  },
});
