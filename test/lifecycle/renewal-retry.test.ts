import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExpiryCheck } from '../../kernel/src/lifecycle/expiry-check.js';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions, days, insertIssuedCertificate } from './cert-fixtures.js';
import { certRow, createCertificate, issuanceEnv, seedIssuance } from './issuance-support.js';
import { completeWithAgent } from './renewal-support.js';

const SEC = 1000;
const NOTHING = { expired: 0, expiring: 0, resettled: 0, renewalJobs: 0, notifications: 0 };

/**
 * Failed renewals are retried by the expiry loop on the renewal policy's interval,
 * up to its max_retries failed Renewal jobs since the newest version, then reported
 * once. Real jobs through the fixture CA (this test plays the agent), an injected clock.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('renewal retries', () => {
  let t: TestKernel;
  let knex: Knex;

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv() });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
    await knex('issuers').insert({ id: 'iss-switch', name: 'Test CA (switchable)', type: 'test-ca-issuer', config: JSON.stringify({ behaviour: 'issue' }) });
    await knex('renewal_policies').insert([
      { id: 'rp-retry', name: 'Two tries, 10 minutes apart', max_retries: 2, retry_interval_seconds: 600 },
      { id: 'rp-manual', name: 'Manual', auto_renew: false },
    ]);
  });
  afterAll(async () => { await t?.stop(); });

  const caBehaves = (behaviour: 'issue' | 'fail') => knex('issuers').where({ id: 'iss-switch' }).update({ config: JSON.stringify({ behaviour }) });
  const renewJobs = (id: string) => knex('jobs').where({ certificate_id: id, type: 'Renewal' }).orderBy('created_at') as Promise<JobRow[]>;
  const failedAt = (job: JobRow) => new Date((job as unknown as { completed_at: Date }).completed_at).getTime();
  const exhaustedNotes = (id: string) => knex('notifications').where({ certificate_id: id, type: 'RenewalFailure' }).where('event_key', 'like', 'renewal-retries-exhausted:%');

  /** Renews by hand through the API and runs the job to its end. */
  async function renewNow(id: string): Promise<JobRow> {
    const res = await t.api.post(`/api/v1/certificates/${id}/renew`, {});
    expect(res.status, res.text).toBe(202);
    return completeWithAgent(t, res.body.id);
  }

  /** The one Renewal job the loop queued (by its trigger), run to its end. */
  async function runQueuedRetry(id: string): Promise<JobRow> {
    const open = await knex('jobs').where({ certificate_id: id, type: 'Renewal', status: 'AwaitingCSR' });
    expect(open).toHaveLength(1);
    expect(open[0].payload.trigger).toBe('retry');
    return completeWithAgent(t, open[0].id);
  }

  it('re-queues a failed renewal after the interval, not before, and stops after max_retries with one notification', async () => {
    const { id, job } = await createCertificate(t, { issuer_id: 'iss-switch', renewal_policy_id: 'rp-retry', agent_id: 'agent-1' });
    expect(await completeWithAgent(t, job.id)).toMatchObject({ status: 'Completed' });
    await caBehaves('fail');

    const first = await renewNow(id);
    expect(first).toMatchObject({ status: 'Failed' });
    expect((await certRow(knex, id)).status).toBe('Failed');
    const t1 = failedAt(first);

    // 600 s after the failure: one second short, nothing; on time, a retry.
    expect(await runExpiryCheck(t.kernel, { now: new Date(t1 + 599 * SEC) })).toEqual(NOTHING);
    expect(await renewJobs(id)).toHaveLength(1);
    expect(await runExpiryCheck(t.kernel, { now: new Date(t1 + 600 * SEC) })).toEqual({ ...NOTHING, renewalJobs: 1 });
    expect((await certRow(knex, id)).status).toBe('RenewalInProgress');
    const requested = await knex('audit_events').where({ resource_id: id, action: 'certificate_renewal_requested' }).orderBy('seq', 'desc').first();
    expect(requested.details).toMatchObject({ from: 'Failed', to: 'RenewalInProgress', trigger: 'retry' });
    // The job is open now: another pass adds nothing.
    expect(await runExpiryCheck(t.kernel, { now: new Date(t1 + 601 * SEC) })).toEqual(NOTHING);

    const second = await runQueuedRetry(id);
    expect(second).toMatchObject({ status: 'Failed' });
    expect((await certRow(knex, id)).status).toBe('Failed');

    // Two failed renewals = max_retries: no third try, however long we wait; one notification.
    const later = new Date(failedAt(second) + 3600 * SEC);
    expect(await runExpiryCheck(t.kernel, { now: later })).toEqual({ ...NOTHING, notifications: 1 });
    expect(await renewJobs(id)).toHaveLength(2);
    const [note, ...more] = await exhaustedNotes(id);
    expect(more).toEqual([]);
    expect(note).toMatchObject({ type: 'RenewalFailure', severity: 'critical', status: 'pending' });
    expect(note.subject).toContain('renewal retries exhausted');
    expect(note.message).toContain('failed to renew 2 times in a row (retry limit 2)');
    expect(note.message).toContain('the test CA is broken for good');
    expect(await runExpiryCheck(t.kernel, { now: new Date(later.getTime() + 86_400 * SEC) })).toEqual(NOTHING);
    expect(await exhaustedNotes(id)).toHaveLength(1);
    expect((await auditActions(knex, id)).filter((a) => a === 'certificate_renewal_retries_exhausted')).toHaveLength(1);
  });

  it('starts the count afresh after a successful renewal', async () => {
    await caBehaves('issue');
    const { id, job } = await createCertificate(t, { issuer_id: 'iss-switch', renewal_policy_id: 'rp-retry', agent_id: 'agent-1' });
    await completeWithAgent(t, job.id);
    await caBehaves('fail');
    const f1 = await renewNow(id);
    await runExpiryCheck(t.kernel, { now: new Date(failedAt(f1) + 600 * SEC) });
    const f2 = await runQueuedRetry(id);
    expect(f2).toMatchObject({ status: 'Failed' });
    expect(await runExpiryCheck(t.kernel, { now: new Date(failedAt(f2) + 600 * SEC) })).toMatchObject({ renewalJobs: 0, notifications: 1 });

    // Renewed by hand: a new version. The next failure is the first of a new count.
    await caBehaves('issue');
    expect(await renewNow(id)).toMatchObject({ status: 'Completed' });
    expect((await certRow(knex, id)).status).toBe('Active');
    await caBehaves('fail');
    const f3 = await renewNow(id);
    expect(f3).toMatchObject({ status: 'Failed' });
    expect(await runExpiryCheck(t.kernel, { now: new Date(failedAt(f3) + 600 * SEC) })).toEqual({ ...NOTHING, renewalJobs: 1 });
    await caBehaves('issue');
    expect(await runQueuedRetry(id)).toMatchObject({ status: 'Completed' });
    expect((await certRow(knex, id)).status).toBe('Active');
    expect(await exhaustedNotes(id)).toHaveLength(1);
  });

  it('uses the table defaults without a policy (3 tries, an hour apart) and leaves what may not be retried alone', async () => {
    const now = Date.now();
    const failedJobs = async (certId: string, n: number, lastAt: number) => {
      for (let i = 0; i < n; i++) {
        const at = new Date(lastAt - (n - 1 - i) * 3_600_000);
        await knex('jobs').insert({ id: `job-${certId}-${i}`, type: 'Renewal', status: 'Failed', certificate_id: certId, last_error: 'CA down', created_at: new Date(at.getTime() - 1000), updated_at: at, completed_at: at });
      }
    };
    const version = (certId: string, at: number) => knex('certificate_versions').insert({
      id: `cv-${certId}`, certificate_id: certId, serial_number: `ab${certId.length}`, fingerprint_sha256: 'f'.repeat(64), not_before: days(-60, now), not_after: days(30, now), pem_chain: 'x', created_at: new Date(at),
    });
    const failed = async (name: string, fields: Record<string, unknown>, failures: number, versioned = true) => {
      const id = await insertIssuedCertificate(knex, { id: `mc-rt-${name}`, status: 'Failed', expires_at: days(60, now), issuer_id: 'iss-issue', ...fields });
      if (versioned) await version(id, now - 10 * 86_400_000);
      await failedJobs(id, failures, now);
      return id;
    };
    const twice = await failed('twice', {}, 2);
    const thrice = await failed('thrice', {}, 3);
    const manual = await failed('manual', { renewal_policy_id: 'rp-manual' }, 1);
    const never = await failed('never-issued', { serial_number: null, expires_at: null }, 1, false);

    expect(await runExpiryCheck(t.kernel, { now: new Date(now + 3599 * SEC) })).toEqual({ ...NOTHING, notifications: 1 });
    expect(await exhaustedNotes(thrice)).toHaveLength(1);
    expect(await runExpiryCheck(t.kernel, { now: new Date(now + 3600 * SEC) })).toEqual({ ...NOTHING, renewalJobs: 1 });
    expect((await renewJobs(twice)).map((j) => j.status)).toEqual(['Failed', 'Failed', 'Pending']);
    for (const id of [thrice, manual, never]) {
      expect((await renewJobs(id)).every((j) => j.status === 'Failed')).toBe(true);
      expect((await certRow(knex, id)).status).toBe('Failed');
    }
    expect(await exhaustedNotes(manual)).toEqual([]);
    expect(await exhaustedNotes(never)).toEqual([]);
  });

  it('marks Failed a renewal whose job the reaper failed (its worker died), then retries it', async () => {
    const now = Date.now();
    const id = await insertIssuedCertificate(knex, { id: 'mc-rt-reaped', status: 'RenewalInProgress', expires_at: days(60, now), issuer_id: 'iss-issue' });
    await knex('certificate_versions').insert({ id: 'cv-rt-reaped', certificate_id: id, serial_number: 'cd01', fingerprint_sha256: 'e'.repeat(64), not_before: days(-30, now), not_after: days(60, now), pem_chain: 'x', created_at: days(-30, now) });
    const [job] = await t.kernel.jobs.enqueue({ type: 'Renewal', certificate_id: id });
    await knex('jobs').where({ id: job.id }).update({ status: 'Running', attempts: 3, max_attempts: 3, lease_owner: 'replica-gone', lease_expires_at: new Date(Date.now() - 1000) });
    expect(await t.kernel.jobs.reap()).toMatchObject({ failed: 1 });
    expect((await certRow(knex, id)).status).toBe('RenewalInProgress');

    const reaped = (await knex('jobs').where({ id: job.id }).first()) as JobRow;
    const r = await runExpiryCheck(t.kernel, { now: new Date(now) });
    expect(r.renewalJobs).toBe(0);
    expect((await certRow(knex, id)).status).toBe('Failed');
    const failedEvent = await knex('audit_events').where({ resource_id: id, action: 'certificate_renewal_failed' }).first();
    expect(failedEvent.details).toMatchObject({ job_id: job.id, from: 'RenewalInProgress', to: 'Failed' });
    expect(await knex('notifications').where({ certificate_id: id, type: 'RenewalFailure', event_key: `issuance-failed:${job.id}` })).toHaveLength(1);

    expect(await runExpiryCheck(t.kernel, { now: new Date(failedAt(reaped) + 3600 * SEC) })).toMatchObject({ renewalJobs: 1 });
    expect((await renewJobs(id)).map((j) => j.status)).toEqual(['Failed', 'Pending']);
  });
});
