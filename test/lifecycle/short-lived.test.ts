import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExpiryCheck } from '../../kernel/src/lifecycle/expiry-check.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { days, insertIssuedCertificate, seedReferences } from './cert-fixtures.js';

const MIN = 60_000;
const at = (ms: number, from: number) => new Date(from + ms);

async function seedShortLivedProfile(knex: Knex) {
  await knex('certificate_profiles').insert({ id: 'prof-ten-min', name: 'Ten minutes', max_ttl_seconds: 600 });
}

/**
 * Certificates living under an hour get the expiry steps on their own 30 s loop; the
 * hourly pass leaves them alone. Their renewal window is the last third of their life
 * (a day-sized window would keep them permanently due), and they get no expiry warnings.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('short-lived certificates: the steps', () => {
  let t: TestKernel;
  let knex: Knex;
  const now = Date.now();
  const statusOf = async (id: string) => ((await knex('managed_certificates').where({ id }).first('status')) as { status: string }).status;
  const jobsOf = (id: string) => knex('jobs').where({ certificate_id: id }).orderBy('created_at') as Promise<{ id: string; type: string; status: string; agent_id: string | null }[]>;

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    knex = t.kernel.db.knex;
    await seedReferences(knex);
    await seedShortLivedProfile(knex);
    // A ten-minute certificate with three minutes left: inside its last third.
    await insertIssuedCertificate(knex, { id: 'mc-sl-due', not_before: at(-7 * MIN, now), expires_at: at(3 * MIN, now), agent_id: 'agent-1' });
    // Ten minutes, one gone: not due yet.
    await insertIssuedCertificate(knex, { id: 'mc-sl-fresh', not_before: at(-1 * MIN, now), expires_at: at(9 * MIN, now) });
    await insertIssuedCertificate(knex, { id: 'mc-sl-gone', not_before: at(-12 * MIN, now), expires_at: at(-2 * MIN, now) });
    // Short-lived by its profile's cap, lifetime unknown: due in the last third of the cap.
    await insertIssuedCertificate(knex, { id: 'mc-sl-profile', profile_id: 'prof-ten-min', not_before: null, expires_at: at(2 * MIN, now) });
    await insertIssuedCertificate(knex, { id: 'mc-long', expires_at: days(20, now) });
  });
  afterAll(async () => { await t?.stop(); });

  it('the hourly pass skips short-lived certificates', async () => {
    const r = await runExpiryCheck(t.kernel, { now: new Date(now) });
    expect(r).toEqual({ expired: 0, expiring: 1, resettled: 0, renewalJobs: 1, notifications: 1 });
    expect(await statusOf('mc-long')).toBe('RenewalInProgress');
    for (const id of ['mc-sl-due', 'mc-sl-fresh', 'mc-sl-gone', 'mc-sl-profile']) {
      expect(await statusOf(id)).toBe('Active');
      expect(await jobsOf(id)).toEqual([]);
    }
  });

  it('the short-lived pass moves them, renews them once, and sends no expiry warnings', async () => {
    const r = await runExpiryCheck(t.kernel, { now: new Date(now), certificates: 'short-lived' });
    expect(r).toEqual({ expired: 1, expiring: 2, resettled: 0, renewalJobs: 3, notifications: 0 });
    expect(await statusOf('mc-sl-fresh')).toBe('Active');
    for (const id of ['mc-sl-due', 'mc-sl-gone', 'mc-sl-profile']) expect(await statusOf(id)).toBe('RenewalInProgress');
    expect(await jobsOf('mc-sl-due')).toMatchObject([{ type: 'Renewal', status: 'AwaitingCSR', agent_id: 'agent-1' }]);
    expect(await jobsOf('mc-sl-gone')).toMatchObject([{ type: 'Renewal', status: 'Pending' }]);
    expect(await knex('notifications').whereIn('certificate_id', ['mc-sl-due', 'mc-sl-fresh', 'mc-sl-gone', 'mc-sl-profile']).select('id')).toEqual([]);
    // Again with the same clock: nothing to do, no second job.
    expect(await runExpiryCheck(t.kernel, { now: new Date(now), certificates: 'short-lived' })).toEqual({ expired: 0, expiring: 0, resettled: 0, renewalJobs: 0, notifications: 0 });
    expect(await jobsOf('mc-sl-due')).toHaveLength(1);
    // The fresh one becomes due once its last third starts (10 min life: 200 s before expiry).
    expect(await runExpiryCheck(t.kernel, { now: at(6 * MIN, now), certificates: 'short-lived' })).toMatchObject({ expiring: 1, renewalJobs: 1 });
    expect(await statusOf('mc-sl-fresh')).toBe('RenewalInProgress');
  });

  it('settles a short-lived certificate whose renewal was cancelled, and asks again', async () => {
    const [job] = await jobsOf('mc-sl-gone');
    await knex('jobs').where({ id: job.id }).update({ status: 'Cancelled' });
    const r = await runExpiryCheck(t.kernel, { now: new Date(now), certificates: 'short-lived' });
    expect(r).toMatchObject({ resettled: 1, renewalJobs: 1 });
    expect(await statusOf('mc-sl-gone')).toBe('RenewalInProgress');
    expect((await jobsOf('mc-sl-gone')).map((j) => j.status)).toEqual(['Cancelled', 'Pending']);
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('short-lived certificates: the loop', () => {
  let t: TestKernel;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SHORT_LIVED_CHECK_INTERVAL: '1s' } });
    await seedReferences(t.kernel.db.knex);
  });
  afterAll(async () => { await t?.stop(); });

  it('picks up a 10-minute certificate within a few ticks', async () => {
    const knex = t.kernel.db.knex;
    const now = Date.now();
    await insertIssuedCertificate(knex, { id: 'mc-ten-minutes', not_before: at(-8 * MIN, now), expires_at: at(2 * MIN, now), agent_id: 'agent-1' });
    const deadline = Date.now() + 15_000;
    let jobs: { type: string; status: string }[] = [];
    while (Date.now() < deadline) {
      jobs = await knex('jobs').where({ certificate_id: 'mc-ten-minutes' }).select('type', 'status');
      if (jobs.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(jobs).toEqual([{ type: 'Renewal', status: 'AwaitingCSR' }]);
    expect(((await knex('managed_certificates').where({ id: 'mc-ten-minutes' }).first('status')) as { status: string }).status).toBe('RenewalInProgress');
    const runs = (await knex('scheduler_runs').where({ loop: 'short-lived-check' }).select('outcome')) as { outcome: string }[];
    expect(runs.length).toBeGreaterThan(0);
    expect(runs.every((r) => r.outcome !== 'error')).toBe(true);
  });
});
