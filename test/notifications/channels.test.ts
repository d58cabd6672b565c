import crypto from 'node:crypto';
import type { Knex } from 'knex';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExpiryCheck } from '../../kernel/src/lifecycle/expiry-check.js';
import { dispatchNotifications } from '../../kernel/src/notifications/notification-dispatch.js';
import { recordNotification } from '../../kernel/src/notifications/notification-events.js';
import { days, insertIssuedCertificate, seedReferences } from '../lifecycle/cert-fixtures.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { HttpReceiver, type ReceivedRequest } from './http-receiver.js';
import { freePort } from '../support/free-port.js';
import { startSmtpSink, type SmtpSink } from './smtp-sink.js';

/**
 * Every notifier plugin, end to end: an ExpirationWarning from the expiry
 * check and a RenewalSuccess reach a real SMTP server (aiosmtpd) and loopback
 * receivers that check each vendor's documented wire format field by field.
 */
const SECRETS = {
  smtp: 'smtp-pass-7c1e0a9b5d',
  hmac: 'hmac-secret-4f2d9e81a6c3',
  routingKey: 'R0UTINGKEY1234567890abcdefABCDEF',
  genieKey: 'genie-key-0b8e7f6a-5d4c-4b3a-9a1b',
  slackPath: '/services/T0TEST/B0TEST/slackSECRETtoken42',
  teamsPath: '/teams/webhookb2/teamsSECRETsig77',
  wrongSmtp: 'wrong-smtp-pass-2b9d',
};

const hmacOf = (raw: Buffer) => `sha256=${crypto.createHmac('sha256', SECRETS.hmac).update(raw).digest('hex')}`;

describe.skipIf(POSTGRES_UNAVAILABLE)('notifier channels', () => {
  let t: TestKernel;
  let knex: Knex;
  let smtp: SmtpSink;
  const saas = new HttpReceiver();
  const logs: string[] = [];
  const ids: Record<string, string> = {};
  let certId: string;
  let expiresAt: Date;

  const createNotifier = async (name: string, type: string, config: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const res = await t.api.post('/api/v1/notifiers', { name, type, config, ...extra });
    expect(res.status, res.text).toBe(201);
    ids[name] = res.body.id;
    return res.body;
  };

  beforeAll(async () => {
    smtp = await startSmtpSink({ auth: { user: 'certctl', pass: SECRETS.smtp } });
    await saas.start();
    saas
      .on('/hook', (r) => (r.headers['x-certctl-signature'] === hmacOf(r.rawBody) ? { status: 204 } : { status: 401, body: 'bad signature' }))
      .on('/services/', () => ({ status: 200, body: 'ok' }))
      .on('/teams/', () => ({ status: 200, body: '1' }))
      .on('/pd/v2/enqueue', (r) => ({ status: 202, body: { status: 'success', message: 'Event processed', dedup_key: r.json?.dedup_key } }))
      .on('/og/v2/alerts', (r) => (r.headers.authorization === `GenieKey ${SECRETS.genieKey}`
        ? { status: 202, body: { result: 'Request will be processed', took: 0.01, requestId: crypto.randomUUID() } }
        : { status: 401, body: { message: 'Could not authenticate', took: 0, requestId: 'x' } }));
    const log = pino({ level: 'debug' }, { write: (line: string) => { logs.push(line); } });
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' }, start: { log } });
    knex = t.kernel.db.knex;
    await seedReferences(knex);
    expiresAt = days(5);
    // A manual-renewal policy keeps the certificate Expiring (no renewal job) while it is alerted on.
    certId = await insertIssuedCertificate(knex, { id: 'mc-notify', common_name: 'shop.example.com', owner_id: 'owner-a', expires_at: expiresAt, renewal_policy_id: 'rp-manual' });

    await createNotifier('mail', 'email', { host: '127.0.0.1', port: smtp.port, starttls: 'disabled', username: 'certctl', password: SECRETS.smtp, from: 'certctl <certctl@example.test>' });
    await createNotifier('hook', 'webhook', { url: `${saas.url}/hook/certctl?src=test`, secret: SECRETS.hmac });
    await createNotifier('slack', 'slack', { webhook_url: `${saas.url}${SECRETS.slackPath}`, username: 'certctl' });
    await createNotifier('teams', 'teams', { webhook_url: `${saas.url}${SECRETS.teamsPath}` });
    await createNotifier('teams-workflow', 'teams', { webhook_url: `${saas.url}${SECRETS.teamsPath}/workflow`, format: 'adaptive_card' });
    await createNotifier('pagerduty', 'pagerduty', { routing_key: SECRETS.routingKey, api_url: `${saas.url}/pd` });
    await createNotifier('opsgenie', 'opsgenie', { api_key: SECRETS.genieKey, api_url: `${saas.url}/og` });
  });

  afterAll(async () => {
    await t?.stop();
    await smtp?.stop();
    await saas.stop();
  });

  const one = (prefix: string): ReceivedRequest => {
    const got = saas.received(prefix);
    expect(got, prefix).toHaveLength(1);
    return got[0];
  };

  it('routes an expiry warning to every channel and delivers it in each format', async () => {
    const r = await runExpiryCheck(t.kernel);
    expect(r.notifications).toBe(1);
    const rows = await knex('notifications').where({ certificate_id: certId }).orderBy('channel');
    expect(rows).toHaveLength(7);
    for (const row of rows) {
      expect(row).toMatchObject({ type: 'ExpirationWarning', severity: 'warning', status: 'pending', recipient: 'alice@example.com' });
      expect(row.dedupe_key).toBe(`${row.event_key}#${row.notifier_id}`);
    }

    const sent = await dispatchNotifications(t.kernel);
    expect(sent).toEqual({ claimed: 7, sent: 7, retrying: 0, failed: 0 });
    const after = await knex('notifications').where({ certificate_id: certId });
    expect(after.map((n) => [n.status, n.attempts, n.error])).toEqual(Array(7).fill(['sent', 1, null]));
    const subject = 'Certificate shop.example.com expires in 5 days';
    const isoExpiry = new Date(expiresAt).toISOString();

    // E-mail: a real SMTP transaction, authenticated, to the certificate owner.
    const [mail] = smtp.messages();
    expect(smtp.messages()).toHaveLength(1);
    expect(mail.login).toBe('certctl');
    expect(mail.mail_from).toBe('certctl@example.test');
    expect(mail.rcpt_tos).toEqual(['alice@example.com']);
    expect(mail.headers.subject).toBe(subject);
    expect(mail.headers.to).toBe('alice@example.com');
    expect(mail.headers.from).toBe('certctl <certctl@example.test>');
    expect(mail.headers['x-certctl-event']).toBe('ExpirationWarning');
    expect(mail.headers['x-certctl-notification-id']).toMatch(/^notif-/);
    expect(mail.text).toContain(`Certificate ${certId} (shop.example.com) expires in 5 days`);
    expect(mail.text).toMatch(/Common name:\s+shop\.example\.com/);
    expect(mail.text).toContain(`Expires at:  ${isoExpiry}`);
    expect(mail.html).toContain('<th align="left">Common name</th><td>shop.example.com</td>');

    // Webhook: JSON, signed over the raw body; the receiver checked the HMAC (it answers 401 otherwise).
    const hook = one('/hook');
    expect(hook.method).toBe('POST');
    expect(hook.path).toBe('/hook/certctl?src=test');
    expect(hook.headers['content-type']).toBe('application/json');
    expect(hook.headers['x-certctl-signature']).toBe(hmacOf(hook.rawBody));
    expect(hook.headers['x-certctl-event']).toBe('ExpirationWarning');
    expect(hook.headers['x-certctl-timestamp']).toBe(String(hook.json.timestamp));
    expect(Math.abs(hook.json.timestamp - Date.now() / 1000)).toBeLessThan(60);
    expect(hook.json).toMatchObject({
      type: 'ExpirationWarning', severity: 'warning', subject, recipients: ['alice@example.com'],
      certificate: { id: certId, common_name: 'shop.example.com', status: 'Expiring', expires_at: isoExpiry },
    });
    expect(hook.headers['x-certctl-notification-id']).toBe(hook.json.id);

    // Slack incoming webhook: text fallback plus Block Kit blocks.
    const slack = one('/services/');
    expect(slack.path).toBe(SECRETS.slackPath);
    expect(slack.headers['content-type']).toBe('application/json');
    expect(slack.json.username).toBe('certctl');
    expect(slack.json.text).toBe(`:warning: ${subject}`);
    expect(slack.json.blocks[0]).toEqual({ type: 'header', text: { type: 'plain_text', text: subject, emoji: true } });
    expect(slack.json.blocks[1]).toEqual({ type: 'section', text: { type: 'mrkdwn', text: expect.stringContaining('expires in 5 days') } });
    expect(slack.json.blocks[2].type).toBe('section');
    expect(slack.json.blocks[2].fields).toContainEqual({ type: 'mrkdwn', text: '*Common name*\nshop.example.com' });
    expect(slack.json.blocks[2].fields.length).toBeLessThanOrEqual(10);
    expect(slack.json.blocks[3]).toMatchObject({ type: 'context', elements: [{ type: 'mrkdwn' }] });

    // Teams: a connector MessageCard, and an Adaptive Card message for a Workflows webhook.
    const [card, workflow] = [SECRETS.teamsPath, `${SECRETS.teamsPath}/workflow`].map((p) => saas.requests.find((r) => r.path === p)!);
    expect(card.json).toMatchObject({ '@type': 'MessageCard', '@context': 'https://schema.org/extensions', summary: subject, title: subject, themeColor: 'FFA500' });
    expect(card.json.text).toContain('expires in 5 days');
    expect(card.json.sections[0].facts).toContainEqual({ name: 'Common name', value: 'shop.example.com' });
    expect(card.json.sections[0].facts).toContainEqual({ name: 'Expires at', value: isoExpiry });
    expect(workflow.json.type).toBe('message');
    expect(workflow.json.attachments).toHaveLength(1);
    expect(workflow.json.attachments[0]).toMatchObject({ contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null });
    const adaptive = workflow.json.attachments[0].content;
    expect(adaptive).toMatchObject({ $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', type: 'AdaptiveCard', version: '1.4' });
    expect(adaptive.body[0]).toMatchObject({ type: 'TextBlock', text: subject, weight: 'Bolder', color: 'Warning', wrap: true });
    expect(adaptive.body[2].type).toBe('FactSet');
    expect(adaptive.body[2].facts).toContainEqual({ title: 'Common name', value: 'shop.example.com' });

    // PagerDuty Events API v2: a trigger keyed to the certificate.
    const pd = one('/pd/');
    expect(pd.method).toBe('POST');
    expect(pd.path).toBe('/pd/v2/enqueue');
    expect(pd.headers['content-type']).toBe('application/json');
    expect(pd.json).toMatchObject({
      routing_key: SECRETS.routingKey, event_action: 'trigger', dedup_key: `certctl-${certId}`, client: 'certctl',
      payload: { summary: subject, source: 'certctl', severity: 'warning', component: 'shop.example.com', class: 'ExpirationWarning' },
    });
    expect(new Date(pd.json.payload.timestamp).toISOString()).toBe(pd.json.payload.timestamp);
    expect(pd.json.payload.custom_details).toMatchObject({ certificate: certId, common_name: 'shop.example.com', expires_at: isoExpiry });

    // OpsGenie Alert API: GenieKey auth, alias per certificate, priority from severity.
    const og = one('/og/');
    expect(og.path).toBe('/og/v2/alerts');
    expect(og.headers.authorization).toBe(`GenieKey ${SECRETS.genieKey}`);
    expect(og.json).toMatchObject({
      message: subject, alias: `certctl-${certId}`, priority: 'P3', source: 'certctl', tags: ['certctl'], entity: 'shop.example.com',
      details: { certificate: certId, common_name: 'shop.example.com', severity: 'warning', type: 'ExpirationWarning' },
    });
    expect(og.json.description).toContain('expires in 5 days');
    expect(Object.values(og.json.details).every((v) => typeof v === 'string')).toBe(true);
  });

  it('resolves the PagerDuty incident and closes the OpsGenie alert on renewal success', async () => {
    await knex.transaction((trx) => recordNotification(t.kernel, trx, {
      type: 'RenewalSuccess', certificate_id: certId, severity: 'info', subject: 'Certificate shop.example.com renewed', message: 'Renewed by the local CA.', dedupe_key: 'renewal:mc-notify:1',
    }));
    expect(await dispatchNotifications(t.kernel)).toEqual({ claimed: 7, sent: 7, retrying: 0, failed: 0 });
    const pd = saas.received('/pd/').at(-1)!;
    expect(pd.json).toEqual({ routing_key: SECRETS.routingKey, event_action: 'resolve', dedup_key: `certctl-${certId}` });
    const og = saas.received('/og/').at(-1)!;
    expect(og.path).toBe(`/og/v2/alerts/certctl-${certId}/close?identifierType=alias`);
    expect(og.headers.authorization).toBe(`GenieKey ${SECRETS.genieKey}`);
    expect(og.json).toMatchObject({ source: 'certctl', note: expect.stringContaining('renewed') });
    expect(smtp.messages().at(-1)?.headers.subject).toBe('Certificate shop.example.com renewed');
  });

  it('maps SMTP failures: bad credentials are final; a refused STARTTLS and a server that is down are retried', async () => {
    for (const id of Object.values(ids)) expect((await t.api.put(`/api/v1/notifiers/${id}`, { enabled: false })).status).toBe(200);
    const base = { host: '127.0.0.1', port: smtp.port, from: 'certctl@example.test' };
    const badPass = await createNotifier('mail-bad-pass', 'email', { ...base, starttls: 'disabled', username: 'certctl', password: SECRETS.wrongSmtp });
    const noTls = await createNotifier('mail-needs-tls', 'email', { ...base, starttls: 'required' });
    const down = await createNotifier('mail-down', 'email', { ...base, port: await freePort(), starttls: 'disabled' });
    const before = smtp.messages().length;
    await knex.transaction((trx) => recordNotification(t.kernel, trx, {
      type: 'DeploymentFailure', certificate_id: certId, severity: 'critical', subject: 'Deployment failed', message: 'nginx -t failed', dedupe_key: 'smtp-failures',
    }));
    const outcome = await dispatchNotifications(t.kernel);
    const rows = Object.fromEntries((await knex('notifications').where({ event_key: 'smtp-failures' })).map((r) => [r.notifier_id, r]));
    expect(outcome).toEqual({ claimed: 3, sent: 0, retrying: 2, failed: 1 });
    expect(rows[badPass.id]).toMatchObject({ status: 'failed', error: expect.stringMatching(/^smtp EAUTH: .*535/) });
    // 454 is "TLS not available due to temporary reason" (RFC 3207): tried again later, never sent in clear.
    expect(rows[noTls.id]).toMatchObject({ status: 'pending', attempts: 1, error: 'smtp ETLS: 454 TLS not available' });
    expect(rows[down.id]).toMatchObject({ status: 'pending', attempts: 1, error: expect.stringMatching(/^smtp (ECONNECTION|ESOCKET)/) });
    expect(smtp.messages()).toHaveLength(before);
    for (const n of [badPass, noTls, down]) expect((await t.api.put(`/api/v1/notifiers/${n.id}`, { enabled: false })).status).toBe(200);
  });

  it('never shows a secret in API responses or logs', async () => {
    const values = [SECRETS.smtp, SECRETS.wrongSmtp, SECRETS.hmac, SECRETS.routingKey, SECRETS.genieKey, 'slackSECRETtoken42', 'teamsSECRETsig77'];
    const list = await t.api.get('/api/v1/notifiers?per_page=100');
    expect(list.status).toBe(200);
    const byName = Object.fromEntries(list.body.data.map((n: { name: string }) => [n.name, n]));
    expect(byName.mail.secret_fields_set).toEqual(['password']);
    expect(byName.hook.secret_fields_set).toEqual(['secret']);
    expect(byName.slack.secret_fields_set).toEqual(['webhook_url']);
    expect(byName.pagerduty.secret_fields_set).toEqual(['routing_key']);
    expect(byName.opsgenie.secret_fields_set).toEqual(['api_key']);
    const bodies = [list.text];
    for (const id of Object.values(ids)) bodies.push((await t.api.get(`/api/v1/notifiers/${id}`)).text);
    bodies.push((await t.api.get('/api/v1/notifications?per_page=100')).text);
    bodies.push((await t.api.get('/api/v1/audit?per_page=200')).text);
    expect(logs.length).toBeGreaterThan(0);
    for (const v of values) {
      for (const b of bodies) expect(b.includes(v), `a response carries ${v}`).toBe(false);
      expect(logs.some((l) => l.includes(v)), `the log carries ${v}`).toBe(false);
    }
  });
});
