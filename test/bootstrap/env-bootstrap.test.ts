import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpReceiver } from '../notifications/http-receiver.js';
import { startSmtpSink, type SmtpSink } from '../notifications/smtp-sink.js';
import { curl, newCsr, pemCerts, printCerts } from '../protocols/est-support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { waitFor } from '../support/wait.js';
import { applyEnvBootstrap } from '../../kernel/src/bootstrap/apply-env.js';
import { runScheduledDigest } from '../../kernel/src/notifications/digest-send.js';
import { RestartableKernel } from './env-support.js';

/*
 * Configuration from the environment variables of the system certctl replaces
 * (kernel/src/bootstrap): a kernel started with CERTCTL_EST_*, CERTCTL_SMTP_*,
 * CERTCTL_SLACK_*, ... has the matching env-managed protocol endpoint and notifiers,
 * whose secrets the API never returns and the log never shows; EST enrolment works
 * through the endpoint; the digest reaches a real SMTP server (aiosmtpd) once per
 * interval; a restart with a variable removed disables what it made.
 */
const SECRETS = {
  est: 'env-est-basic-password-7f3a',
  smtp: 'env-smtp-password-91c2',
  slackPath: '/services/T0ENV/B0ENV/slack-env-secret-55d1',
  pagerduty: 'env-pagerduty-routing-key-3e8b',
  opsgenie: 'env-opsgenie-api-key-c4d7',
  scep: 'env-scep-challenge-0b9e',
};
const NOTIFIER_IDS = ['ntf-env-email', 'ntf-env-opsgenie', 'ntf-env-pagerduty', 'ntf-env-slack', 'ntf-env-teams', 'ntf-env-webhook'];
const RECIPIENTS = 'ops@example.test,security@example.test';

describe.skipIf(POSTGRES_UNAVAILABLE)('configuration from CERTCTL_* environment variables', () => {
  let smtp: SmtpSink;
  let receiver: HttpReceiver;
  let rk: RestartableKernel;
  let env: Record<string, string>;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-envboot-'));
  const api = () => rk.api!;
  const digests = () => smtp.messages().filter((m) => m.headers['x-certctl-event'] === 'Digest');

  beforeAll(async () => {
    smtp = await startSmtpSink({ auth: { user: 'certctl', pass: SECRETS.smtp } });
    receiver = await new HttpReceiver().start();
    env = {
      CERTCTL_EST_ENABLED: 'true', CERTCTL_EST_USERNAME: 'device', CERTCTL_EST_PASSWORD: SECRETS.est,
      CERTCTL_SCEP_ENABLED: 'true', CERTCTL_SCEP_CHALLENGE_PASSWORD: SECRETS.scep,
      CERTCTL_SMTP_HOST: '127.0.0.1', CERTCTL_SMTP_PORT: String(smtp.port), CERTCTL_SMTP_USE_TLS: 'false',
      CERTCTL_SMTP_USERNAME: 'certctl', CERTCTL_SMTP_PASSWORD: SECRETS.smtp, CERTCTL_SMTP_FROM_ADDRESS: 'certctl <certctl@example.test>',
      CERTCTL_WEBHOOK_URL: `${receiver.url}/hook`,
      CERTCTL_SLACK_WEBHOOK_URL: `${receiver.url}${SECRETS.slackPath}`, CERTCTL_SLACK_CHANNEL: '#pki', CERTCTL_SLACK_USERNAME: 'certctl-bot',
      CERTCTL_TEAMS_WEBHOOK_URL: `${receiver.url}/teams`,
      CERTCTL_PAGERDUTY_ROUTING_KEY: SECRETS.pagerduty, CERTCTL_PAGERDUTY_SEVERITY: 'critical',
      CERTCTL_OPSGENIE_API_KEY: SECRETS.opsgenie,
      CERTCTL_DIGEST_ENABLED: 'true', CERTCTL_DIGEST_INTERVAL: '1h', CERTCTL_DIGEST_RECIPIENTS: RECIPIENTS,
    };
    rk = new RestartableKernel(fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-envboot-data-')));
    await rk.start(env);
  });
  afterAll(async () => {
    await rk?.dispose();
    await smtp?.stop();
    await receiver?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const expectNoSecret = (text: string) => {
    for (const s of Object.values(SECRETS)) expect(text).not.toContain(s);
  };

  it('creates the env-managed EST endpoint and notifiers; secrets are sealed, never returned, never logged', async () => {
    const pe = await api().get('/api/v1/protocol-endpoints/pe-env-est');
    expect(pe.status).toBe(200);
    expect(pe.body).toMatchObject({ type: 'est', enabled: true, status: 'enabled', managed_by: 'env', secret_fields_set: ['password'] });
    expect(pe.body.config).toMatchObject({ issuer_id: 'iss-local', auth: 'basic', username: 'device' });
    const scep = await api().get('/api/v1/protocol-endpoints/pe-env-scep');
    expect(scep.body).toMatchObject({ type: 'scep', enabled: true, managed_by: 'env', config: { issuer_id: 'iss-local' }, secret_fields_set: ['challenge_password'] });
    expectNoSecret(scep.text);
    const caps = await curl(scratch, `${rk.kernel!.url}/scep?operation=GetCACaps`, { cacert: path.join(rk.dataDir, 'tls', 'server.crt') });
    expect(caps.status).toBe(200);
    expect(caps.body.toString()).toContain('POSTPKIOperation');
    // The default issuer of the replaced system exists: created as a Local CA.
    expect((await api().get('/api/v1/issuers/iss-local')).body).toMatchObject({ type: 'local-ca', enabled: true });

    const list = await api().get('/api/v1/notifiers?page_size=50');
    expect(list.status).toBe(200);
    const env = (list.body.data as { id: string; managed_by?: string }[]).filter((n) => n.managed_by === 'env');
    expect(env.map((n) => n.id).sort()).toEqual(NOTIFIER_IDS);
    const byId = Object.fromEntries((list.body.data as Record<string, any>[]).map((n) => [n.id, n]));
    expect(byId['ntf-env-email']).toMatchObject({ type: 'email', status: 'enabled', config: { host: '127.0.0.1', port: smtp.port, starttls: 'disabled', username: 'certctl' }, secret_fields_set: ['password'] });
    expect(byId['ntf-env-slack']).toMatchObject({ type: 'slack', config: { channel: '#pki', username: 'certctl-bot' }, secret_fields_set: ['webhook_url'] });
    expect(byId['ntf-env-pagerduty']).toMatchObject({ config: { severity: 'critical' }, secret_fields_set: ['routing_key'] });
    expect(byId['ntf-env-opsgenie']).toMatchObject({ config: { priority: 'P3' }, secret_fields_set: ['api_key'] });
    expect(byId['ntf-env-webhook'].config.url).toBe(`${receiver.url}/hook`);
    expectNoSecret(pe.text + list.text);

    // Sealed at rest, as for any instance made through the API.
    const rows = await rk.kernel!.db.knex('notifiers').whereIn('id', NOTIFIER_IDS).select('config', 'encrypted_config');
    expectNoSecret(JSON.stringify(rows));
    const audit = await rk.kernel!.db.knex('audit_events').where({ action: 'notifier_created', actor: 'system' }).select('resource_id', 'details');
    expect(audit.map((a) => a.resource_id).sort()).toEqual(NOTIFIER_IDS);
    expectNoSecret(JSON.stringify(audit));
    expect(rk.logs.join('')).toContain('env-managed notifier created');
  });

  it('refuses API changes of what the environment owns (409), keeps routing editable', async () => {
    const put = await api().put('/api/v1/protocol-endpoints/pe-env-est', { config: { password: 'operator-override-pass' } });
    expect(put.status).toBe(409);
    expect(put.body.error.code).toBe('env_managed');
    expect((await api().put('/api/v1/notifiers/ntf-env-email', { enabled: false })).status).toBe(409);
    const del = await api().delete('/api/v1/notifiers/ntf-env-slack');
    expect(del.status).toBe(409);
    expect(del.body.error.message).toMatch(/managed by environment variables/);
    const routing = await api().put('/api/v1/notifiers/ntf-env-slack', { event_types: ['ExpirationWarning', 'RenewalFailure'] });
    expect(routing.status, routing.text).toBe(200);
    expect(routing.body.event_types).toEqual(['ExpirationWarning', 'RenewalFailure']);
    // Nothing of the refused edits was written.
    expect((await api().get('/api/v1/notifiers/ntf-env-email')).body.enabled).toBe(true);
  });

  it('an env-made notifier delivers: the Slack webhook URL from CERTCTL_SLACK_WEBHOOK_URL receives the test message', async () => {
    const res = await api().post('/api/v1/notifiers/ntf-env-slack/test', {});
    expect(res.status, res.text).toBe(200);
    expect(res.body.status).toBe('sent');
    const [hit] = receiver.received(SECRETS.slackPath);
    expect(hit.json).toMatchObject({ channel: '#pki', username: 'certctl-bot' });
  });

  it('EST enrolment with curl and HTTP basic through the env-created endpoint', async () => {
    const cacert = path.join(rk.dataDir, 'tls', 'server.crt');
    const csr = await newCsr(scratch, 'device-env.example.test', { sans: ['device-env.example.test'] });
    const url = `${rk.kernel!.url}/.well-known/est/simpleenroll`;
    const denied = await curl(scratch, url, { cacert, method: 'POST', contentType: 'application/pkcs10', bodyFile: csr.b64File, user: 'device:wrong-password' });
    expect(denied.status).toBe(401);
    const res = await curl(scratch, url, { cacert, method: 'POST', contentType: 'application/pkcs10', bodyFile: csr.b64File, user: `device:${SECRETS.est}` });
    expect(res.status, res.body.toString()).toBe(200);
    const certs = pemCerts(await printCerts(res.body));
    expect(certs).toHaveLength(1);
    const issued = await rk.kernel!.db.knex('managed_certificates').where({ common_name: 'device-env.example.test', issuer_id: 'iss-local' }).first('id', 'status');
    expect(issued?.status).toBe('Active');
  });

  it('the scheduled digest reaches the SMTP server once per interval; send-now and preview show the inventory', async () => {
    const [first] = await waitFor('the scheduled digest', () => (digests().length ? digests() : null));
    expect(first.rcpt_tos.sort()).toEqual(RECIPIENTS.split(','));
    expect(first.login).toBe('certctl');
    expect(first.headers.subject).toMatch(/^certctl digest: \d+ expiring, \d+ expired of \d+ certificates$/);
    expect(first.html).toContain('Certificate digest');
    expect(first.text).toContain('Certificates:');
    // Another tick within the interval claims nothing: still one.
    await rk.kernel!.scheduler.trigger('digest');
    expect(digests()).toHaveLength(1);

    const knex = rk.kernel!.db.knex;
    const soon = new Date(Date.now() + 5 * 86_400_000 + 3_600_000);
    await knex('managed_certificates').insert({ id: 'mc-digest-soon', name: 'soon', common_name: 'soon.example.test', status: 'Expiring', expires_at: soon });
    await knex('jobs').insert({ id: 'job-digest-failed', type: 'Renewal', status: 'Failed', certificate_id: 'mc-digest-soon', last_error: 'CA unreachable' });

    const preview = await api().get('/api/v1/digest/preview');
    expect(preview.status).toBe(200);
    expect(String(preview.headers['content-type'])).toMatch(/^text\/html/);
    expect(preview.text).toContain('soon.example.test');
    const json = await api().get('/api/v1/digest/preview?format=json');
    expect(json.body.recipients).toEqual(RECIPIENTS.split(','));
    expect(json.body.data.certificates.expiring).toBeGreaterThanOrEqual(1);

    const sent = await api().post('/api/v1/digest/send', {});
    expect(sent.status, sent.text).toBe(200);
    expect(sent.body).toEqual({ status: 'sent', notifier_id: 'ntf-env-email', recipients: 2 });
    const now = await waitFor('the digest sent on request', () => (digests().length === 2 ? digests()[1] : null));
    expect(now.html).toContain('soon.example.test');
    expect(now.html).toContain('5 days');
    expect(now.text).toMatch(/Failed: 1/);
    expect(now.text).toContain('CA unreachable');
    const audit = await knex('audit_events').where({ action: 'digest_sent' }).orderBy('seq').select('actor', 'details');
    expect(audit.map((a) => a.details.trigger)).toEqual(['schedule', 'api']);

    // A key without notification.manage may preview but not send.
    const viewer = await api().post('/api/v1/auth/keys', { name: 'viewer', roles: [{ role_id: 'role-viewer' }] });
    expect((await api().withKey(viewer.body.key).post('/api/v1/digest/send', {})).status).toBe(403);
    expect((await api().withKey(viewer.body.key).get('/api/v1/digest/preview')).status).toBe(200);
    expectNoSecret(rk.logs.join(''));
  });

  it('a restart with the same variables writes nothing and sends no digest before the interval is over', async () => {
    const envWrites = async () => Number((await rk.kernel!.db.knex('audit_events').where({ actor: 'system' })
      .whereIn('action', ['notifier_updated', 'notifier_created', 'protocol_endpoint_updated', 'protocol_endpoint_created']).count({ n: '*' }).first())!.n);
    const before = await envWrites();
    await rk.stop();
    await rk.start(env);
    await rk.kernel!.scheduler.trigger('digest');
    expect(await envWrites()).toBe(before);
    expect(digests()).toHaveLength(2);
  });

  it('kernels starting or ticking together: one of them creates each env row, one sends each scheduled digest', async () => {
    const k = rk.kernel!;
    const knex = k.db.knex;
    const created = async () => Number((await knex('audit_events').where({ resource_id: 'ntf-env-teams', action: 'notifier_created' }).count({ n: '*' }).first())!.n);
    await knex('notifiers').where({ id: 'ntf-env-teams' }).delete();
    const before = await created();
    // Without the advisory lock both would find no row and insert it: one would fail on the key.
    await Promise.all([applyEnvBootstrap(k), applyEnvBootstrap(k), applyEnvBootstrap(k)]);
    expect(await created()).toBe(before + 1);
    expect((await knex('notifiers').where({ id: 'ntf-env-teams' }).first('managed_by', 'enabled'))).toEqual({ managed_by: 'env', enabled: true });

    await knex('digest_state').where({ id: 'digest' }).update({ claimed_at: null });
    const sentBefore = digests().length;
    const outcomes = await Promise.all([runScheduledDigest(k), runScheduledDigest(k), runScheduledDigest(k)]);
    expect(outcomes.filter((o) => o !== null)).toEqual([{ status: 'sent', notifier_id: 'ntf-env-email', recipients: 2 }]);
    await waitFor('the claimed digest', () => (digests().length === sentBefore + 1 ? true : null));
  });

  it('a restart with variables removed disables what they made; the API then says the digest is off', async () => {
    await rk.stop();
    const { CERTCTL_EST_ENABLED: _e, CERTCTL_SLACK_WEBHOOK_URL: _s, CERTCTL_DIGEST_ENABLED: _d, ...rest } = env;
    await rk.start({ ...rest, CERTCTL_EST_ENABLED: 'false' });
    const pe = await api().get('/api/v1/protocol-endpoints/pe-env-est');
    expect(pe.body).toMatchObject({ enabled: false, managed_by: 'env', status_reason: 'CERTCTL_EST_ENABLED is not set' });
    expect((await api().get('/api/v1/notifiers/ntf-env-slack')).body.enabled).toBe(false);
    expect((await api().get('/api/v1/notifiers/ntf-env-email')).body.enabled).toBe(true);
    const cacert = path.join(rk.dataDir, 'tls', 'server.crt');
    const csr = await newCsr(scratch, 'after-off.example.test');
    const res = await curl(scratch, `${rk.kernel!.url}/.well-known/est/simpleenroll`, { cacert, method: 'POST', contentType: 'application/pkcs10', bodyFile: csr.b64File, user: `device:${SECRETS.est}` });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect((await api().get('/api/v1/digest/preview')).status).toBe(409);
    expect((await api().post('/api/v1/digest/send', {})).body.error.code).toBe('digest_not_configured');
    // Disabled because its variable is gone, an env-managed row may be deleted; an enabled one may not.
    expect((await api().delete('/api/v1/notifiers/ntf-env-email')).status).toBe(409);
    expect((await api().delete('/api/v1/notifiers/ntf-env-slack')).status).toBe(204);
    expect((await api().get('/api/v1/notifiers/ntf-env-slack')).status).toBe(404);
  });

  it('refuses to start when the environment names an issuer that does not exist', async () => {
    await rk.stop();
    const err = await rk.startRefused({ ...env, CERTCTL_EST_ISSUER_ID: 'iss-nowhere' });
    expect(err.message).toBe('CERTCTL_EST_ISSUER_ID: issuer iss-nowhere does not exist');
  });
});
