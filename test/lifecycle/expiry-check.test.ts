import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExpiryCheck } from '../../kernel/src/lifecycle/expiry-check.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions, days, insertIssuedCertificate, seedReferences, writeCounts } from './cert-fixtures.js';

const DAY = 86_400_000;

async function snapshot(knex: Knex) {
  const certs = (await knex('managed_certificates').orderBy('id').select('id', 'status', 'updated_at')) as { id: string; status: string; updated_at: Date }[];
  const jobs = (await knex('jobs').orderBy('id').select('id', 'status')) as { id: string; status: string }[];
  const notes = (await knex('notifications').orderBy('id').select('dedupe_key')) as { dedupe_key: string }[];
  return { certs, jobs, notes, counts: await writeCounts(knex) };
}

describe.skipIf(POSTGRES_UNAVAILABLE)('expiry check loop', () => {
  let t: TestKernel;
  let knex: Knex;
  const now = Date.now();
  const c: Record<string, string> = {};
  const statusOf = async (id: string) => ((await knex('managed_certificates').where({ id }).first('status')) as { status: string }).status;
  const jobsOf = (id: string) => knex('jobs').where({ certificate_id: id }).orderBy('created_at') as Promise<any[]>;
  const notesOf = (id: string) => knex('notifications').where({ certificate_id: id }).orderBy('created_at') as Promise<any[]>;

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_RENEWAL_CHECK_INTERVAL: '2h' } });
    knex = t.kernel.db.knex;
    await seedReferences(knex);
    const cert = async (name: string, fields: Record<string, unknown>) => { c[name] = await insertIssuedCertificate(knex, { id: `mc-${name}`, ...fields }); };
    await cert('far', { expires_at: days(100, now) });
    await cert('window', { expires_at: days(20, now), owner_id: 'owner-a' });
    await cert('manual-outside', { expires_at: days(19, now), renewal_policy_id: 'rp-manual' });
    await cert('manual-inside', { expires_at: days(8, now), renewal_policy_id: 'rp-manual' });
    await cert('manual-expired', { expires_at: days(-1, now), renewal_policy_id: 'rp-manual' });
    await cert('expired', { expires_at: days(-1, now), status: 'Expiring' });
    await cert('auto45', { expires_at: days(40, now), renewal_policy_id: 'rp-auto' });
    await cert('approval', { expires_at: days(5, now), profile_id: 'prof-approval', agent_id: 'agent-1' });
    await cert('agent', { expires_at: days(5, now), agent_id: 'agent-1' });
    await cert('has-job', { expires_at: days(5, now), status: 'Expiring' });
    await t.kernel.jobs.enqueue({ type: 'Renewal', certificate_id: c['has-job'] });
    await cert('revoked', { expires_at: days(5, now), status: 'Revoked', revoked_at: new Date(now) });
    await cert('pending', { expires_at: null, status: 'Pending', serial_number: null });
    await cert('no-issuer', { expires_at: days(5, now), issuer_id: null });
    await cert('stuck', { expires_at: days(5, now), status: 'RenewalInProgress' });
    const [stuckJob] = await t.kernel.jobs.enqueue({ type: 'Renewal', certificate_id: c.stuck, status: 'AwaitingApproval' });
    await knex('jobs').where({ id: stuckJob.id }).update({ status: 'Cancelled', last_error: 'approval timed out' });
  });
  afterAll(async () => { await t?.stop(); });

  it('moves statuses, queues renewals and warns, in one pass', async () => {
    const r = await runExpiryCheck(t.kernel, { now: new Date(now) });
    expect(r).toEqual({ expired: 2, expiring: 6, resettled: 1, renewalJobs: 6, notifications: 11 });

    expect(await statusOf(c.far)).toBe('Active');
    expect(await statusOf(c['manual-outside'])).toBe('Active');
    expect(await statusOf(c['manual-inside'])).toBe('Expiring');
    expect(await statusOf(c['manual-expired'])).toBe('Expired');
    expect(await statusOf(c['has-job'])).toBe('Expiring');
    expect(await statusOf(c.revoked)).toBe('Revoked');
    expect(await statusOf(c.pending)).toBe('Pending');
    expect(await statusOf(c['no-issuer'])).toBe('Expiring');
    for (const name of ['window', 'expired', 'auto45', 'approval', 'agent', 'stuck']) {
      expect({ name, status: await statusOf(c[name]) }).toEqual({ name, status: 'RenewalInProgress' });
    }

    expect(await jobsOf(c['manual-inside'])).toEqual([]);
    expect(await jobsOf(c['manual-expired'])).toEqual([]);
    expect(await jobsOf(c['no-issuer'])).toEqual([]);
    expect((await jobsOf(c['has-job'])).length).toBe(1);
    expect(await jobsOf(c.window)).toMatchObject([{ type: 'Renewal', status: 'Pending', agent_id: null, requested_by: 'system' }]);
    expect(await jobsOf(c.agent)).toMatchObject([{ type: 'Renewal', status: 'AwaitingCSR', agent_id: 'agent-1' }]);
    const [approvalJob] = await jobsOf(c.approval);
    expect(approvalJob).toMatchObject({ type: 'Renewal', status: 'AwaitingApproval' });
    expect(new Date(approvalJob.approval_expires_at).getTime()).toBeGreaterThan(Date.now() + 71 * 3_600_000);
    expect((await jobsOf(c.stuck)).map((j) => j.status)).toEqual(['Cancelled', 'Pending']);

    expect(await auditActions(knex, c.window)).toEqual(['certificate_status_changed', 'certificate_renewal_requested']);
    const ev = await knex('audit_events').where({ resource_id: c.window, action: 'certificate_status_changed' }).first();
    expect(ev).toMatchObject({ actor: 'system', actor_type: 'system' });
    expect(ev.details).toEqual({ from: 'Active', to: 'Expiring', reason: 'renewal_window' });
    expect(await auditActions(knex, c.expired)).toEqual(['certificate_status_changed', 'certificate_renewal_requested']);
    expect(await auditActions(knex, c.stuck)).toEqual(['certificate_status_changed', 'certificate_renewal_requested']);

    // The smallest threshold already crossed, once per certificate.
    const expected: Record<string, string> = {
      window: '30', 'manual-outside': '20', 'manual-inside': '20', 'manual-expired': '5', expired: '0', auto45: '45',
      approval: '7', agent: '7', 'has-job': '7', 'no-issuer': '7', stuck: '7',
    };
    for (const [name, threshold] of Object.entries(expected)) {
      const notes = await notesOf(c[name]);
      const exp = (await knex('managed_certificates').where({ id: c[name] }).first('expires_at')).expires_at as Date;
      expect({ name, keys: notes.map((n) => n.dedupe_key) }).toEqual({ name, keys: [`expiry:${c[name]}:${threshold}:${Math.floor(exp.getTime() / 1000)}`] });
      expect(notes[0]).toMatchObject({ type: 'ExpirationWarning', status: 'pending', channel: 'email' });
    }
    expect(await notesOf(c.far)).toEqual([]);
    expect(await notesOf(c.revoked)).toEqual([]);
    expect(await notesOf(c.pending)).toEqual([]);
    const [windowNote] = await notesOf(c.window);
    expect(windowNote.recipient).toBe('alice@example.com');
    expect(windowNote.subject).toBe(`Certificate ${c.window}.example.com expires in 20 days`);
    expect((await notesOf(c.expired))[0].subject).toBe(`Certificate ${c.expired}.example.com has expired`);
  });

  it('changes nothing when run again with the same clock', async () => {
    const before = await snapshot(knex);
    const r = await runExpiryCheck(t.kernel, { now: new Date(now) });
    expect(r).toEqual({ expired: 0, expiring: 0, resettled: 0, renewalJobs: 0, notifications: 0 });
    expect(await snapshot(knex)).toEqual(before);
  });

  it('warns again at the next threshold, and for a new expiry', async () => {
    const later = new Date(now + 16 * DAY);
    const r = await runExpiryCheck(t.kernel, { now: later });
    // window (4 days left, renewal in flight) crosses 7; manual-outside (3 days left) enters its window and crosses 5.
    expect(await statusOf(c['manual-outside'])).toBe('Expiring');
    expect((await notesOf(c.window)).map((n) => n.dedupe_key.split(':')[2])).toEqual(['30', '7']);
    expect((await notesOf(c['manual-outside'])).map((n) => n.dedupe_key.split(':')[2])).toEqual(['20', '5']);
    expect(r.notifications).toBeGreaterThanOrEqual(2);
    const again = await runExpiryCheck(t.kernel, { now: later });
    expect(again).toEqual({ expired: 0, expiring: 0, resettled: 0, renewalJobs: 0, notifications: 0 });

    // A renewed certificate (new expiry) is warned about afresh at the same threshold.
    await knex('managed_certificates').where({ id: c['manual-inside'] }).update({ expires_at: days(17, later.getTime()), status: 'Active' });
    const r2 = await runExpiryCheck(t.kernel, { now: later });
    expect(r2.notifications).toBe(1);
    const keys = (await notesOf(c['manual-inside'])).map((n) => n.dedupe_key);
    expect(keys.map((k) => k.split(':')[2])).toEqual(['20', '5', '20']);
    expect(keys[2]).not.toBe(keys[0]);
  });

  it('is registered as the expiry-check loop on the renewal interval', async () => {
    const loop = t.kernel.scheduler.status().find((l) => l.name === 'expiry-check');
    expect(loop).toMatchObject({ interval_ms: 2 * 3_600_000, single_replica: true });
    const id = await insertIssuedCertificate(knex, { expires_at: new Date(Date.now() - 1000), renewal_policy_id: 'rp-manual' });
    await t.kernel.scheduler.trigger('expiry-check');
    expect(await statusOf(id)).toBe('Expired');
    expect(t.kernel.scheduler.status().find((l) => l.name === 'expiry-check')).toMatchObject({ runs: 1, last_error: null });
  });
});

describe.skipIf(POSTGRES_UNAVAILABLE)('expiry check at scale', () => {
  let t: TestKernel;
  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    await seedReferences(t.kernel.db.knex);
  });
  afterAll(async () => { await t?.stop(); });

  it('handles thousands of certificates in batches, not a query per certificate', async () => {
    const knex = t.kernel.db.knex;
    const N = 1200;
    const now = Date.now();
    const rows = Array.from({ length: N }, (_, i) => ({
      id: `mc-bulk-${String(i).padStart(5, '0')}`, name: `bulk ${i}`, common_name: `b${i}.example.com`, status: 'Active',
      issuer_id: 'iss-local', agent_id: i % 2 ? 'agent-1' : null, expires_at: new Date(now + (i % 3 === 0 ? -1 : 3) * DAY),
    }));
    for (let i = 0; i < N; i += 400) await knex('managed_certificates').insert(rows.slice(i, i + 400));
    let queries = 0;
    // The loop's own statements; live-event fan-out (pg_notify, batched by the event bus) is not the loop's work.
    const count = (q: { sql?: string }) => { if (!/pg_notify/.test(q.sql ?? '')) queries++; };
    knex.on('query', count);
    let r;
    try {
      r = await runExpiryCheck(t.kernel, { now: new Date(now), batchSize: 500 });
    } finally {
      knex.removeListener('query', count);
    }
    expect(r).toEqual({ expired: 400, expiring: 800, resettled: 0, renewalJobs: N, notifications: N });
    expect(queries).toBeLessThan(150);
    const statuses = (await knex('managed_certificates').where('id', 'like', 'mc-bulk-%').groupBy('status').select('status').count({ n: '*' })) as { status: string; n: number }[];
    expect(statuses.map((s) => [s.status, Number(s.n)])).toEqual([['RenewalInProgress', N]]);
    const jobs = (await knex('jobs').groupBy('status').select('status').count({ n: '*' }).orderBy('status')) as { status: string; n: number }[];
    expect(jobs.map((s) => [s.status, Number(s.n)])).toEqual([['AwaitingCSR', N / 2], ['Pending', N / 2]]);
    expect(await runExpiryCheck(t.kernel, { now: new Date(now), batchSize: 500 })).toEqual({ expired: 0, expiring: 0, resettled: 0, renewalJobs: 0, notifications: 0 });
  });
});
