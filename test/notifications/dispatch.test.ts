import type { Knex } from 'knex';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runExpiryCheck } from '../../kernel/src/lifecycle/expiry-check.js';
import { dispatchNotifications } from '../../kernel/src/notifications/notification-dispatch.js';
import { recordNotification, type NotificationEvent } from '../../kernel/src/notifications/notification-events.js';
import { days, insertIssuedCertificate, seedReferences } from '../lifecycle/cert-fixtures.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { HttpReceiver } from './http-receiver.js';

/**
 * Routing, deduplication and delivery outcomes: what reaches which notifier,
 * that an event is recorded once per channel, and that a failing or hanging
 * channel is retried with backoff and finally failed without holding up the others.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('notification routing and dispatch', () => {
  let t: TestKernel;
  let knex: Knex;
  const good = new HttpReceiver();
  const flaky = new HttpReceiver();

  /** Notifiers a test created; switched off after it, so each test sees only its own. */
  const created: string[] = [];
  const createHook = async (name: string, url: string, routing: Record<string, unknown> = {}) => {
    const res = await t.api.post('/api/v1/notifiers', { name, type: 'webhook', config: { url }, ...routing });
    expect(res.status, res.text).toBe(201);
    created.push(res.body.id);
    return res.body.id as string;
  };
  const disable = async (...ids: string[]) => {
    for (const id of ids) expect((await t.api.put(`/api/v1/notifiers/${id}`, { enabled: false })).status).toBe(200);
  };
  const record = (event: NotificationEvent) => knex.transaction((trx) => recordNotification(t.kernel, trx, event));
  const rowsOf = (certificateId: string) => knex('notifications').where({ certificate_id: certificateId }).orderBy('id');
  const event = (over: Partial<NotificationEvent> = {}): NotificationEvent => ({
    type: 'RenewalFailure', certificate_id: 'mc-route', severity: 'critical', subject: 'Renewal failed', message: 'The CA refused the CSR.', ...over,
  });

  beforeAll(async () => {
    await good.start();
    good.on('/hang', () => 'hang');
    await flaky.start();
    flaky.on('/', () => ({ status: 500, body: 'upstream exploded' }));
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    knex = t.kernel.db.knex;
    await seedReferences(knex);
    await insertIssuedCertificate(knex, { id: 'mc-route', owner_id: 'owner-b', renewal_policy_id: 'rp-auto' });
    await insertIssuedCertificate(knex, { id: 'mc-plain', owner_id: 'owner-a' });
  });
  afterEach(async () => {
    await knex('notifiers').whereIn('id', created.splice(0)).update({ enabled: false });
  });
  afterAll(async () => {
    await t?.stop();
    await good.stop();
    await flaky.stop();
  });

  it('validates routing fields: bad input is a catalogued 4xx and writes nothing', async () => {
    const before = await knex('notifiers').count({ n: '*' }).first();
    const bad = [
      { event_types: ['Gossip'] }, { min_severity: 'loud' }, { recipients: ['not-an-address'] }, { renewal_policy_ids: 'rp-auto' },
    ];
    for (const routing of bad) {
      const res = await t.api.post('/api/v1/notifiers', { name: 'bad', type: 'webhook', config: { url: `${good.url}/x` }, ...routing });
      expect(res.status, JSON.stringify(routing)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    const missing = await t.api.post('/api/v1/notifiers', { name: 'bad', type: 'webhook', config: { url: `${good.url}/x` }, renewal_policy_ids: ['rp-nope'] });
    expect(missing.status).toBe(422);
    expect(missing.body.error.code).toBe('reference_not_found');
    expect(await knex('notifiers').count({ n: '*' }).first()).toEqual(before);
  });

  it('routes by event type, severity, renewal policy and owner', async () => {
    const all = await createHook('all', `${good.url}/all`);
    const failures = await createHook('failures', `${good.url}/failures`, { event_types: ['RenewalFailure', 'DeploymentFailure'], min_severity: 'critical' });
    const autoPolicy = await createHook('auto-policy', `${good.url}/auto`, { renewal_policy_ids: ['rp-auto'], recipients: ['pki@example.com'] });
    const got = await t.api.get(`/api/v1/notifiers/${failures}`);
    expect(got.body).toMatchObject({ event_types: ['RenewalFailure', 'DeploymentFailure'], min_severity: 'critical', renewal_policy_ids: [], recipients: [] });

    await record(event({ dedupe_key: 'route-1' }));
    await record(event({ type: 'RenewalSuccess', severity: 'info', certificate_id: 'mc-plain', dedupe_key: 'route-2' }));
    const routed = await knex('notifications').whereIn('event_key', ['route-1', 'route-2']).orderBy(['event_key', 'notifier_id']);
    expect(routed.map((r) => [r.event_key, r.notifier_id, r.channel, r.recipient])).toEqual([
      ['route-1', all, 'webhook', 'bob@example.com'],
      ['route-1', autoPolicy, 'webhook', 'pki@example.com'],
      ['route-1', failures, 'webhook', 'bob@example.com'],
      ['route-2', all, 'webhook', 'alice@example.com'],
    ].sort((a, b) => `${a[0]}${a[1]}`.localeCompare(`${b[0]}${b[1]}`)));
    expect(await dispatchNotifications(t.kernel)).toMatchObject({ claimed: 4, sent: 4 });
    expect(good.received('/failures').map((r) => r.json.type)).toEqual(['RenewalFailure']);
    expect(good.received('/auto').map((r) => r.json.recipients)).toEqual([['pki@example.com']]);
    expect(good.received('/all')).toHaveLength(2);
  });

  it('records an event that nobody routes once, and marks it not delivered', async () => {
    await record(event({ dedupe_key: 'nobody' }));
    const [row] = await knex('notifications').where({ event_key: 'nobody' });
    expect(row).toMatchObject({ notifier_id: null, channel: 'email', recipient: 'bob@example.com', status: 'pending', dedupe_key: 'nobody' });
    expect(await dispatchNotifications(t.kernel)).toEqual({ claimed: 1, sent: 0, retrying: 0, failed: 1 });
    const [after] = await knex('notifications').where({ event_key: 'nobody' });
    expect(after).toMatchObject({ status: 'failed', attempts: 1, error: 'not delivered: no enabled notifier routes this event' });
  });

  it('deduplicates: the same warning twice is one notification per channel; a new channel gets its own', async () => {
    const first = await createHook('dedupe-a', `${good.url}/dedupe-a`);
    await insertIssuedCertificate(knex, { id: 'mc-dedupe', expires_at: days(3), renewal_policy_id: 'rp-manual' });
    const now = new Date();
    expect((await runExpiryCheck(t.kernel, { now })).notifications).toBe(1);
    expect((await runExpiryCheck(t.kernel, { now })).notifications).toBe(0);
    const warned = await rowsOf('mc-dedupe');
    expect(warned.map((r) => [r.type, r.notifier_id])).toEqual([['ExpirationWarning', first]]);
    const key = warned[0].event_key as string;
    expect(key).toMatch(/^expiry:mc-dedupe:5:\d+$/);

    // Recording the same event again adds nothing for the channel that has it...
    const again = { type: 'ExpirationWarning' as const, certificate_id: 'mc-dedupe', severity: 'warning' as const, subject: 's', message: 'm', dedupe_key: key };
    await record(again);
    expect(await rowsOf('mc-dedupe')).toHaveLength(1);
    // ...and a channel added since gets the event once.
    const second = await createHook('dedupe-b', `${good.url}/dedupe-b`);
    await record(again);
    await record(again);
    expect((await rowsOf('mc-dedupe')).map((r) => r.notifier_id).sort()).toEqual([first, second].sort());
    expect(await dispatchNotifications(t.kernel)).toMatchObject({ claimed: 2, sent: 2 });
    expect(await dispatchNotifications(t.kernel)).toMatchObject({ claimed: 0 });
    expect(good.received('/dedupe-a')).toHaveLength(1);
  });

  it('retries a failing channel with backoff, then marks it failed, while the others are sent', async () => {
    const healthy = await createHook('healthy', `${good.url}/healthy`);
    const failing = await createHook('failing', `${flaky.url}/hook`);
    await record(event({ certificate_id: 'mc-plain', dedupe_key: 'retry-1' }));
    const opts = { backoffBaseMs: 500, maxAttempts: 3 };
    const rowFor = async (id: string) => (await knex('notifications').where({ event_key: 'retry-1', notifier_id: id }).first());

    expect(await dispatchNotifications(t.kernel, opts)).toEqual({ claimed: 2, sent: 1, retrying: 1, failed: 0 });
    expect(await rowFor(healthy)).toMatchObject({ status: 'sent', attempts: 1, error: null });
    let failingRow = await rowFor(failing);
    expect(failingRow).toMatchObject({ status: 'pending', attempts: 1, error: 'webhook answered HTTP 500: upstream exploded', lease_owner: null });
    expect(new Date(failingRow.next_attempt_at).getTime() - new Date(failingRow.updated_at).getTime()).toBe(500);
    // Not due yet: nothing is claimed.
    expect(await dispatchNotifications(t.kernel, opts)).toMatchObject({ claimed: 0 });

    // The receiver goes down: the second attempt cannot connect and backs off twice as long.
    await flaky.stop();
    const untilClaimed = async () => {
      for (let i = 0; i < 100; i++) {
        const r = await dispatchNotifications(t.kernel, opts);
        if (r.claimed) return r;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error('the retry never became due');
    };
    expect(await untilClaimed()).toEqual({ claimed: 1, sent: 0, retrying: 1, failed: 0 });
    failingRow = await rowFor(failing);
    expect(failingRow).toMatchObject({ status: 'pending', attempts: 2, error: 'webhook unreachable: ECONNREFUSED' });
    expect(new Date(failingRow.next_attempt_at).getTime() - new Date(failingRow.updated_at).getTime()).toBe(1000);

    expect(await untilClaimed()).toEqual({ claimed: 1, sent: 0, retrying: 0, failed: 1 });
    expect(await rowFor(failing)).toMatchObject({ status: 'failed', attempts: 3, error: 'webhook unreachable: ECONNREFUSED', next_attempt_at: null });
    expect(good.received('/healthy')).toHaveLength(1);
    const health = await t.api.get(`/api/v1/notifiers/${healthy}`);
    expect(health.body.health.last_success_at).not.toBeNull();
  });

  it('does not let a hanging channel hold up the others: the call times out and is retried', async () => {
    const healthy = await createHook('healthy-2', `${good.url}/healthy-2`);
    const hanging = await createHook('hanging', `${good.url}/hang`);
    await record(event({ certificate_id: 'mc-plain', dedupe_key: 'hang-1' }));
    expect(await dispatchNotifications(t.kernel, { callTimeoutMs: 1500, backoffBaseMs: 60_000 })).toEqual({ claimed: 2, sent: 1, retrying: 1, failed: 0 });
    const rows = Object.fromEntries((await knex('notifications').where({ event_key: 'hang-1' })).map((r) => [r.notifier_id, r]));
    expect(rows[healthy].status).toBe('sent');
    expect(rows[hanging]).toMatchObject({ status: 'pending', attempts: 1 });
    // Whichever gives up first at the deadline: the plugin call, or the host's fetch inside it (same deadline).
    expect(rows[hanging].error).toMatch(/timed out|timeout|ETIMEDOUT/);
    // The healthy row was settled while the hanging call was still waiting for its deadline.
    expect(new Date(rows[hanging].updated_at).getTime() - new Date(rows[healthy].sent_at).getTime()).toBeGreaterThan(500);
  });

  it('fails rows whose notifier was disabled or deleted before sending', async () => {
    const soon = await createHook('soon-off', `${good.url}/off`);
    const gone = await createHook('soon-gone', `${good.url}/gone`);
    await record(event({ certificate_id: 'mc-plain', dedupe_key: 'off-1' }));
    await disable(soon);
    expect((await t.api.delete(`/api/v1/notifiers/${gone}`)).status).toBe(204);
    expect(await dispatchNotifications(t.kernel)).toEqual({ claimed: 2, sent: 0, retrying: 0, failed: 2 });
    const rows = await knex('notifications').where({ event_key: 'off-1' }).orderBy('error');
    expect(rows.map((r) => [r.status, r.error])).toEqual([
      ['failed', 'not delivered: no enabled notifier routes this event'],
      ['failed', `notifier ${soon} is disabled`],
    ]);
    expect(good.received('/off')).toHaveLength(0);
  });

  it('never grants a cloud metadata address, even when the operator configures it', async () => {
    const meta = await createHook('metadata', 'http://169.254.169.254/latest/meta-data/iam');
    await record(event({ certificate_id: 'mc-plain', dedupe_key: 'meta-1' }));
    expect(await dispatchNotifications(t.kernel)).toEqual({ claimed: 1, sent: 0, retrying: 0, failed: 1 });
    const row = await knex('notifications').where({ event_key: 'meta-1' }).first();
    expect(row.error).toMatch(/^capability_denied: .*http\.fetch is not granted/);
  });

  it('sends each row once when several dispatchers run at the same time', async () => {
    const hook = await createHook('parallel', `${good.url}/parallel`);
    for (let i = 0; i < 10; i++) await record(event({ certificate_id: 'mc-plain', dedupe_key: `parallel-${i}` }));
    const runs = await Promise.all([1, 2, 3].map(() => dispatchNotifications(t.kernel, { batchSize: 3 })));
    expect(runs.reduce((n, r) => n + r.claimed, 0)).toBe(10);
    expect(runs.reduce((n, r) => n + r.sent, 0)).toBe(10);
    const ids = good.received('/parallel').map((r) => r.json.id as string);
    expect(ids).toHaveLength(10);
    expect(new Set(ids).size).toBe(10);
  });

  it('sends a test notification on request, and reports a failing one', async () => {
    const hook = await createHook('try-me', `${good.url}/try`, { recipients: ['ops@example.com'] });
    const before = await knex('notifications').count({ n: '*' }).first();
    const sent = await t.api.post(`/api/v1/notifiers/${hook}/test`, {});
    expect(sent.status).toBe(200);
    expect(sent.body).toEqual({ status: 'sent' });
    const [got] = good.received('/try');
    expect(got.json).toMatchObject({ subject: 'certctl test notification', severity: 'info', recipients: ['ops@example.com'], certificate: null });
    const custom = await t.api.post(`/api/v1/notifiers/${hook}/test`, { recipients: ['me@example.com'] });
    expect(custom.body.status).toBe('sent');
    expect(good.received('/try')[1].json.recipients).toEqual(['me@example.com']);
    // Nothing is queued: the test bypasses routing and the notifications table.
    expect(await knex('notifications').count({ n: '*' }).first()).toEqual(before);

    const broken = await createHook('try-broken', `${flaky.url}/gone`);
    const failed = await t.api.post(`/api/v1/notifiers/${broken}/test`, {});
    expect(failed.status).toBe(200);
    expect(failed.body).toEqual({ status: 'failed', reason: 'webhook unreachable: ECONNREFUSED', retryable: true });
    expect((await t.api.post(`/api/v1/notifiers/${hook}/test`, { recipients: ['nope'] })).status).toBe(400);
    expect((await t.api.post('/api/v1/notifiers/ntf-missing/test', {})).status).toBe(404);
    await disable(broken);
    expect((await t.api.post(`/api/v1/notifiers/${broken}/test`, {})).status).toBe(409);
    const viewer = t.api.withKey(await t.keyWithRole('viewer'));
    expect((await viewer.post(`/api/v1/notifiers/${hook}/test`, {})).status).toBe(403);
    const audited = await knex('audit_events').where({ action: 'notifier_tested' }).orderBy('seq');
    expect(audited.map((a) => [a.resource_id, a.details.status])).toEqual([[hook, 'sent'], [hook, 'sent'], [broken, 'failed']]);
  });

  it('the kernel runs the dispatcher as its notification-processor loop', async () => {
    const hook = await createHook('loop', `${good.url}/loop`);
    await record(event({ certificate_id: 'mc-plain', dedupe_key: 'loop-1' }));
    await t.kernel.scheduler.trigger('notification-processor');
    expect(await knex('notifications').where({ event_key: 'loop-1' }).first()).toMatchObject({ notifier_id: hook, status: 'sent' });
    expect(good.received('/loop')).toHaveLength(1);
    const api = await t.api.get(`/api/v1/notifications?notifier_id=${hook}`);
    expect(api.body.data).toHaveLength(1);
    expect(api.body.data[0]).toMatchObject({ type: 'RenewalFailure', severity: 'critical', channel: 'webhook', status: 'sent', attempts: 1, next_attempt_at: null });
    expect(api.body.data[0]).not.toHaveProperty('dedupe_key');
    expect(api.body.data[0]).not.toHaveProperty('lease_owner');
  });
});
