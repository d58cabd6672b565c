import { webcrypto } from 'node:crypto';
import { expect } from 'vitest';
import { x509 } from '../../kernel/src/crypto/x509-setup.js';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import type { TestKernel } from '../support/test-kernel.js';
import { runJob, submitCsr } from './issuance-support.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** What an agent sends: a fresh P-256 key's CSR for the certificate's name (fast, unlike server keygen's RSA). */
export async function agentCsr(commonName: string): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [commonName] }], keys, signingAlgorithm: EC,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: commonName }])],
  });
  return csr.toString('pem');
}

/** Plays the agent for one issuing job (its CSR, as H3a's route stores it) and runs the job to its end. */
export async function completeWithAgent(t: TestKernel, jobId: string): Promise<JobRow> {
  const knex = t.kernel.db.knex;
  const job = (await knex('jobs').where({ id: jobId }).first()) as JobRow;
  expect(job.status).toBe('AwaitingCSR');
  const cert = (await knex('managed_certificates').where({ id: job.certificate_id }).first('common_name')) as { common_name: string };
  await submitCsr(knex, jobId, await agentCsr(cert.common_name));
  return runJob(t, jobId);
}
