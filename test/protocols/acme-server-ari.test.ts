import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import { KernelCapabilityBroker } from '../../kernel/src/plugins/broker/capability-broker.js';
import { PluginCallError } from '../../kernel/src/plugins/host/contracts.js';
import { ProtocolIssuanceOps } from '../../kernel/src/protocols/index.js';
import { capturingLogger } from '../plugins/support.js';
import { opensslVerifies, scratch } from '../ca/ca-support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import type { TestKernel } from '../support/test-kernel.js';
import { RawAcme, startAcmeServer } from './acme-client.js';

const run = promisify(execFile);

/** A client's certID (RFC 9773 4.1), computed with openssl: base64url(AKI keyIdentifier) "." base64url(serial DER octets). */
async function certIdOf(dir: string, pem: string): Promise<string> {
  const file = path.join(dir, `${crypto.randomUUID()}.pem`);
  fs.writeFileSync(file, pem);
  const { stdout } = await run('openssl', ['x509', '-in', file, '-noout', '-serial', '-ext', 'authorityKeyIdentifier']);
  const serialHex = /serial=([0-9A-F]+)/i.exec(stdout)![1];
  const akiHex = /(?:keyid:)?((?:[0-9A-F]{2}:)+[0-9A-F]{2})/i.exec(stdout.split('\n').slice(1).join('\n'))![1].replace(/:/g, '');
  let serial = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex');
  if (serial[0] & 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${Buffer.from(akiHex, 'hex').toString('base64url')}.${serial.toString('base64url')}`;
}

/*
 * ACME Renewal Information (RFC 9773) on the ACME server plugin: the directory's
 * renewalInfo, the suggested window (in the future for a good certificate, in
 * the past once it is revoked), and new-order `replaces`: a renewal of the same
 * managed certificate, once per certificate, by its own account only.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('ACME server: renewal information (RFC 9773) and replaces', () => {
  let t: TestKernel;
  let knex: Knex;
  let ca: string;
  let directory: string;
  let rootPem: string;
  const tmp = scratch();

  beforeAll(async () => {
    const s = await startAcmeServer('iss-ari', { mode: 'trust_authenticated', renewal_explanation_url: 'https://pki.example.test/why' });
    ({ t, directory } = s);
    knex = t.kernel.db.knex;
    ca = fs.readFileSync(s.cacert, 'utf8');
    rootPem = s.chainPem[0];
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  /** Orders `names`, finalizes with a fresh key and returns the order and leaf certificate. */
  async function obtain(c: RawAcme, names: string[], extra: Record<string, unknown> = {}) {
    const dir = await c.directory();
    const order = await c.post(dir.newOrder, { identifiers: names.map((value) => ({ type: 'dns', value })), ...extra });
    if (order.status !== 201) return { order, leaf: null };
    const keyFile = path.join(tmp.dir, `${crypto.randomUUID()}.key`);
    const csr = (await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-subj', `/CN=${names[0]}`,
      '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, '-outform', 'DER'], { encoding: 'buffer' })).stdout as Buffer;
    const done = await c.post(order.body.finalize, { csr: csr.toString('base64url') });
    expect(done.body.status, done.text).toBe('valid');
    const chain = await c.post(done.body.certificate, '');
    return { order, done, leaf: chain.text.split(/(?<=-----END CERTIFICATE-----\n)/)[0] };
  }
  const certsNamed = async (cn: string) => (await knex('managed_certificates').where({ common_name: cn }).select('id', 'serial_number', 'status')) as { id: string; serial_number: string; status: string }[];
  const serialOf = (pem: string) => new crypto.X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+/, '');

  it('answers the suggested window of an issued certificate, 404 for an unknown one, 400 for a malformed certID', async () => {
    const c = new RawAcme(directory, ca);
    await c.register();
    const dir = await c.directory();
    expect(dir.renewalInfo).toBe(`${t.kernel.url}/acme/renewal-info`);
    const { leaf } = await obtain(c, ['ari.acme.test']);
    const x509 = new crypto.X509Certificate(leaf!);
    const certId = await certIdOf(tmp.dir, leaf!);

    // Unauthenticated GET (RFC 9773 4.2): a window inside the validity, still ahead, with Retry-After.
    const info = await c.request('GET', `${dir.renewalInfo}/${certId}`);
    expect(info.status, info.text).toBe(200);
    expect(Number(info.headers['retry-after'])).toBeGreaterThan(0);
    const start = Date.parse(info.body.suggestedWindow.start);
    const end = Date.parse(info.body.suggestedWindow.end);
    expect(start).toBeGreaterThan(Date.now());
    expect(end).toBeGreaterThan(start);
    expect(start).toBeGreaterThan(Date.parse(x509.validFrom));
    expect(end).toBeLessThan(Date.parse(x509.validTo));
    expect(info.body.explanationURL).toBeUndefined();

    const [aki, serial] = certId.split('.');
    const unknown = await c.request('GET', `${dir.renewalInfo}/${aki}.${crypto.randomBytes(16).toString('base64url')}`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers['content-type']).toBe('application/problem+json');
    expect(unknown.body.type).toBe('urn:ietf:params:acme:error:malformed');
    // The right serial under another authority key is not this certificate either.
    expect((await c.request('GET', `${dir.renewalInfo}/${crypto.randomBytes(20).toString('base64url')}.${serial}`)).status).toBe(404);
    for (const bad of ['no-dot-here', `${aki}.`, `${aki}.${serial}.x`, 'a%20b.c']) {
      const res = await c.request('GET', `${dir.renewalInfo}/${bad}`);
      expect(res.status, bad).toBe(400);
      expect(res.body.type).toBe('urn:ietf:params:acme:error:malformed');
    }
  });

  it('replaces: renews the same managed certificate, once; another account may not replace it', async () => {
    const c = new RawAcme(directory, ca);
    await c.register();
    const first = await obtain(c, ['renew.acme.test', 'www.renew.acme.test']);
    const [before] = await certsNamed('renew.acme.test');
    const certId = await certIdOf(tmp.dir, first.leaf!);

    // Another account cannot replace it, and nothing is ordered for it.
    const stranger = new RawAcme(directory, ca);
    await stranger.register();
    const refused = await stranger.post((await stranger.directory()).newOrder, { identifiers: [{ type: 'dns', value: 'renew.acme.test' }], replaces: certId });
    expect(refused.status).toBe(403);
    expect(refused.body.type).toBe('urn:ietf:params:acme:error:unauthorized');
    // An order that shares no name with the certificate cannot replace it.
    const unrelated = await c.post((await c.directory()).newOrder, { identifiers: [{ type: 'dns', value: 'other.acme.test' }], replaces: certId });
    expect(unrelated.status).toBe(400);
    expect(unrelated.body.type).toBe('urn:ietf:params:acme:error:malformed');

    const renewed = await obtain(c, ['renew.acme.test', 'www.renew.acme.test'], { replaces: certId });
    expect(renewed.order.body.replaces).toBe(certId);
    expect(opensslVerifies(tmp.dir, rootPem, renewed.leaf!).ok).toBe(true);
    expect(serialOf(renewed.leaf!)).not.toBe(serialOf(first.leaf!));
    // Still one managed certificate, now on the new serial: a Renewal, not a second certificate.
    const after = await certsNamed('renew.acme.test');
    expect(after).toHaveLength(1);
    expect(after[0].id).toBe(before.id);
    expect(after[0].serial_number.replace(/^0+/, '')).toBe(serialOf(renewed.leaf!));
    const versions = await knex('certificate_versions').where({ certificate_id: before.id }).count({ n: '*' }).first();
    expect(Number(versions!.n)).toBe(2);

    // A second order replacing the same certificate: alreadyReplaced (409).
    const again = await c.post((await c.directory()).newOrder, { identifiers: [{ type: 'dns', value: 'renew.acme.test' }], replaces: certId });
    expect(again.status).toBe(409);
    expect(again.body.type).toBe('urn:ietf:params:acme:error:alreadyReplaced');
    // Racing orders for the renewed certificate: exactly one claims it.
    const nextId = await certIdOf(tmp.dir, renewed.leaf!);
    const dir = await c.directory();
    const raced = await Promise.all([0, 1, 2].map(() => c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'renew.acme.test' }], replaces: nextId })));
    expect(raced.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    // Once the claiming order fails (invalid), the certificate can be replaced by another order.
    const holder = raced.find((r) => r.status === 201)!.headers.location.split('/').pop();
    await knex('plugin_kv').where({ plugin_id: 'acme-server', key: `order:${holder}` }).update({ value: knex.raw(`jsonb_set(value, '{status}', '"invalid"')`) });
    expect((await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'renew.acme.test' }], replaces: nextId })).status).toBe(201);
  });

  it('a certificate the operator asks to renew in certctl is due now, until the client replaces it', async () => {
    const c = new RawAcme(directory, ca);
    await c.register();
    const { leaf } = await obtain(c, ['early.acme.test']);
    const certId = await certIdOf(tmp.dir, leaf!);
    const [cert] = await certsNamed('early.acme.test');
    const url = `${(await c.directory()).renewalInfo}/${certId}`;
    expect(Date.parse((await c.request('GET', url)).body.suggestedWindow.start)).toBeGreaterThan(Date.now());
    const renew = await t.api.post(`/api/v1/certificates/${cert.id}/renew`, {});
    // The kernel cannot renew it (only the client holds the key): the request is recorded for the client, no job, status kept.
    expect(renew.status, renew.text).toBe(202);
    expect(renew.body).toMatchObject({ certificate_id: cert.id, renewed_by: 'client' });
    expect(await knex('jobs').where({ certificate_id: cert.id, type: 'Renewal' }).first('id')).toBeUndefined();
    expect((await t.api.get(`/api/v1/certificates/${cert.id}`)).body.status).toBe('Active');
    const due = await c.request('GET', url);
    expect(Date.parse(due.body.suggestedWindow.end)).toBeLessThan(Date.now());

    // The client replaces it: the new version has a window ahead again.
    const renewed = await obtain(c, ['early.acme.test'], { replaces: certId });
    expect((await certsNamed('early.acme.test')).map((r) => r.id)).toEqual([cert.id]);
    const next = await c.request('GET', `${(await c.directory()).renewalInfo}/${await certIdOf(tmp.dir, renewed.leaf!)}`);
    expect(Date.parse(next.body.suggestedWindow.start)).toBeGreaterThan(Date.now());
  });

  it('a revoked certificate is due now, and replacing it issues a new managed certificate', async () => {
    const c = new RawAcme(directory, ca);
    await c.register();
    const { leaf } = await obtain(c, ['revoked.acme.test']);
    const certId = await certIdOf(tmp.dir, leaf!);
    const [cert] = await certsNamed('revoked.acme.test');
    const dir = await c.directory();
    const ahead = await c.request('GET', `${dir.renewalInfo}/${certId}`);
    expect(Date.parse(ahead.body.suggestedWindow.start)).toBeGreaterThan(Date.now());

    // The operator revokes it through the API: the window moves into the past.
    expect((await t.api.post(`/api/v1/certificates/${cert.id}/revoke`, { reason: 'keyCompromise' })).status).toBeLessThan(300);
    const due = await c.request('GET', `${dir.renewalInfo}/${certId}`);
    expect(due.status).toBe(200);
    expect(Date.parse(due.body.suggestedWindow.end)).toBeLessThan(Date.now());
    expect(Date.parse(due.body.suggestedWindow.start)).toBeLessThan(Date.parse(due.body.suggestedWindow.end));
    expect(due.body.explanationURL).toBe('https://pki.example.test/why');

    const replacement = await obtain(c, ['revoked.acme.test'], { replaces: certId });
    expect(replacement.order.status).toBe(201);
    const rows = await certsNamed('revoked.acme.test');
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.id !== cert.id)?.serial_number.replace(/^0+/, '')).toBe(serialOf(replacement.leaf!));
  });

  it('ctx.issuance.certificateStatus answers only for the calling protocol, about versions it names', async () => {
    const broker = new KernelCapabilityBroker({ knex, cipher: t.kernel.cipher, audit: t.kernel.audit, log: capturingLogger().log, issuance: new ProtocolIssuanceOps(() => t.kernel) });
    const status = (pluginId: string, request: object) => broker.handle({ pluginId, instanceId: null, grants: { issuance: true }, deadline: Date.now() + 30_000 }, { op: 'issuance.certificateStatus', request: request as Json });
    const [cert] = await certsNamed('ari.acme.test');
    expect(await status('acme-server', { certificateId: cert.id, serialNumber: cert.serial_number })).toEqual({ status: 'Active', serialNumber: expect.any(String), revoked: false, renewNow: false });
    expect(await status('est', { certificateId: cert.id, serialNumber: cert.serial_number })).toBeNull();
    expect(await status('acme-server', { certificateId: 'mc-nope', serialNumber: 'ab' })).toBeNull();
    for (const bad of [{ certificateId: cert.id }, { certificateId: cert.id, serialNumber: 'xyz' }, { certificateId: '../x', serialNumber: 'ab' }]) {
      await expect(status('acme-server', bad)).rejects.toBeInstanceOf(PluginCallError);
    }
  });
});
