import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateMatchesCsr } from '@certctl/sdk/testing';
import { PluginKv } from '../../kernel/src/plugins/broker/plugin-kv.js';
import { ariCertId } from '../../plugins/issuers/acme/dist/der.js';
import { startPebble, type Pebble } from '../../plugins/issuers/acme/dist/pebble-harness.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { runJob, submitCsr } from '../lifecycle/issuance-support.js';
import { csrFor, issueRequest } from './acme-fixtures.js';

/**
 * The ACME issuer as the kernel runs it: the plugin in a worker thread, its kv in
 * plugin_kv, and the CA's http-01 validation answered by the kernel's public route
 * /.well-known/acme-challenge/{token}. Pebble's validation requests (plain HTTP)
 * reach the kernel through a loopback relay, as an operator's port-80 proxy would.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('ACME issuer in the kernel with the http-01 route', () => {
  let t: TestKernel;
  let pebble: Pebble;
  let kv: PluginKv;
  const anonymous = () => t.api.withKey(null);

  beforeAll(async () => {
    // No scheduler: the end-to-end test drains its jobs itself.
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_JOB_BACKOFF: '10ms' } });
    kv = new PluginKv(t.kernel.db.knex);
    pebble = await startPebble({
      keyAuthorization: async (token) => {
        const res = await anonymous().get(`/.well-known/acme-challenge/${token}`);
        return res.status === 200 ? res.text : undefined;
      },
    });
  });
  afterAll(async () => {
    await pebble?.stop();
    await t?.stop();
  });

  it('the route serves only live http01 keys of the acme plugin, as text/plain, to anyone', async () => {
    const token = crypto.randomBytes(24).toString('base64url');
    await kv.set('acme', `http01:${token}`, `${token}.thumbprint`, 60);
    const res = await anonymous().get(`/.well-known/acme-challenge/${token}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toBe(`${token}.thumbprint`);

    const other = crypto.randomBytes(24).toString('base64url');
    await kv.set('webhook', `http01:${other}`, 'not-ours', 60);
    await kv.set('acme', `account-key:${other}`, 'PRIVATE', 60);
    expect((await anonymous().get(`/.well-known/acme-challenge/${other}`)).status).toBe(404);
    expect((await anonymous().get('/.well-known/acme-challenge/short')).status).toBe(404);
    expect((await anonymous().get(`/.well-known/acme-challenge/${crypto.randomBytes(24).toString('base64url')}`)).status).toBe(404);
    await t.kernel.db.knex('plugin_kv').where({ plugin_id: 'acme', key: `http01:${token}` }).update({ expires_at: t.kernel.db.knex.raw(`now() - interval '1 second'`) });
    expect((await anonymous().get(`/.well-known/acme-challenge/${token}`)).status).toBe(404);
  });

  it('issues through the plugin host: the CA validates against the kernel route; account key generated into kv', async () => {
    const created = await t.api.post('/api/v1/issuers', { id: 'iss-acme', name: 'Pebble', type: 'acme', config: { directory_url: pebble.ariDirectoryUrl, email: 'pki@certctl.test', ca_certificates_pem: pebble.tlsCaPem } });
    expect(created.status, created.text).toBe(201);
    expect(await t.kernel.pluginHost.call('acme', 'iss-acme', 'validateConfig', {})).toEqual({ ok: true });
    const names = ['api.certctl.test'];
    const csrPem = csrFor(names);
    const out = (await t.kernel.pluginHost.call('acme', 'iss-acme', 'issue', issueRequest('mc-api', csrPem, names) as never)) as any;
    expect(out.status, JSON.stringify(out)).toBe('issued');
    expect(certificateMatchesCsr(out.certificatePem, csrPem)).toBe(true);
    expect(await kv.get('acme', 'account-key:iss-acme')).toMatch(/BEGIN PRIVATE KEY/);
    expect(await kv.list('acme', 'http01:')).toEqual([]);

    const serial = new crypto.X509Certificate(out.certificatePem).serialNumber;
    // The revocation job hands over the stored pem_chain (leaf first, then the chain).
    const bundle = [out.certificatePem, ...out.chainPem].join('');
    expect(await t.kernel.pluginHost.call('acme', 'iss-acme', 'revoke', { serialNumber: serial, certificatePem: bundle, reason: 'cessationOfOperation' } as never)).toEqual({ status: 'revoked' });
    expect(JSON.parse((await pebble.management(`/cert-status-by-serial/${serial.toLowerCase().replace(/^0+/, '')}`)).body)).toMatchObject({ Status: 'Revoked', Reason: 5 });
  });

  it('an operator-supplied account key is a sealed secret: used for the account, never written to kv or config', async () => {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const created = await t.api.post('/api/v1/issuers', { id: 'iss-acme-key', name: 'Pebble own key', type: 'acme', config: { directory_url: pebble.directoryUrl, email: 'pki@certctl.test', ca_certificates_pem: pebble.tlsCaPem, account_key_pem: pem } });
    expect(created.status, created.text).toBe(201);
    expect(created.text).not.toContain('PRIVATE KEY');
    const names = ['own.certctl.test'];
    const out = (await t.kernel.pluginHost.call('acme', 'iss-acme-key', 'issue', issueRequest('mc-own', csrFor(names), names) as never)) as any;
    expect(out.status, JSON.stringify(out)).toBe('issued');
    expect(await kv.get('acme', 'account-key:iss-acme-key')).toBeUndefined();
    expect(await kv.get('acme', 'account:iss-acme-key')).toMatchObject({ url: expect.any(String) });
    const row = await t.kernel.db.knex('issuers').where({ id: 'iss-acme-key' }).first();
    expect(JSON.stringify(row.config)).not.toContain('PRIVATE KEY');
  });

  it('end to end through certctl jobs: issued from the agent\'s CSR, renewed, revoked at the CA', async () => {
    const knex = t.kernel.db.knex;
    await knex('agents').insert({ id: 'agent-e2e', name: 'e2e' });
    const cn = 'e2e.certctl.test';
    const created = await t.api.post('/api/v1/certificates', { name: 'e2e', common_name: cn, issuer_id: 'iss-acme', agent_id: 'agent-e2e' });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const issueOnce = async () => {
      const job = await knex('jobs').where({ certificate_id: id, status: 'AwaitingCSR' }).first();
      await submitCsr(knex, job.id, csrFor([cn]));
      const done = await runJob(t, job.id);
      expect(done.status, JSON.stringify(done.last_error ?? done)).toBe('Completed');
    };
    await issueOnce();
    const first = await knex('managed_certificates').where({ id }).first();
    expect(first.status).toBe('Active');

    expect((await t.api.post(`/api/v1/certificates/${id}/renew`, {})).status).toBeLessThan(300);
    await issueOnce();
    const versions = await knex('certificate_versions').where({ certificate_id: id }).orderBy('created_at');
    expect(versions.length).toBe(2);
    const serials = versions.map((v: { pem_chain: string }) => new crypto.X509Certificate(v.pem_chain).serialNumber.toLowerCase());
    expect((await knex('managed_certificates').where({ id }).first()).serial_number.toLowerCase()).toBe(serials[1]);
    // The renewal order told the CA which certificate it replaces (ARI, through the shim in front of Pebble).
    expect(pebble.ari.orders.at(-1)).toMatchObject({ identifiers: [{ type: 'dns', value: cn }], replaces: ariCertId(versions[0].pem_chain) });

    const revoked = await t.api.post(`/api/v1/certificates/${id}/revoke`, { reason: 'keyCompromise' });
    expect(revoked.status, revoked.text).toBeLessThan(300);
    const job = await runJob(t, revoked.body.job.id);
    expect(job, JSON.stringify(job)).toMatchObject({ status: 'Completed', result: { issuer_notified: true } });
    for (const serial of serials) {
      const status = await pebble.management(`/cert-status-by-serial/${serial.replace(/^0+/, '')}`);
      expect(JSON.parse(status.body), serial).toMatchObject({ Status: 'Revoked', Reason: 1 });
    }
  });
});
