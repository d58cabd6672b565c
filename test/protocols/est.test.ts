import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../lifecycle/issuance-support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { scratch } from '../ca/ca-support.js';
import { curl, newCsr, openssl, pemCerts, printCerts, type CurlResult } from './est-support.js';

/*
 * The EST server plugin (plugins/protocols/est) in a real kernel, driven by curl and
 * checked with openssl: enrolment with HTTP basic and client-certificate auth,
 * re-enrolment with the certificate being renewed, cacerts, csrattrs, serverkeygen,
 * approvals, and the protocol's errors for everything malformed (never a 500).
 */
const PASSWORD = 'est-device-password';
const PKCS10 = 'application/pkcs10';

describe.skipIf(POSTGRES_UNAVAILABLE)('EST server (RFC 7030)', () => {
  let t: TestKernel;
  let knex: Knex;
  let cacert: string;
  let root: string;
  const tmp = scratch();
  const url = (p: string) => `${t.kernel.url}/.well-known/est${p}`;
  const est = (p: string, opts: Omit<Parameters<typeof curl>[2], 'cacert'> = {}) => curl(tmp.dir, url(p), { cacert, ...opts });
  const enroll = (p: string, file: string, opts: Omit<Parameters<typeof curl>[2], 'cacert'> = {}) => est(p, { method: 'POST', contentType: PKCS10, bodyFile: file, ...opts });
  const estCertificates = async () => Number(((await knex('managed_certificates').whereRaw("tags->>'protocol' = 'est'").count({ n: '*' }).first()) as { n: string | number }).n);
  const leafOf = async (res: CurlResult) => {
    const certs = pemCerts(await printCerts(res.body));
    expect(certs).toHaveLength(1);
    return certs[0];
  };
  const write = (name: string, content: string | Buffer) => {
    const file = path.join(tmp.dir, name);
    fs.writeFileSync(file, content);
    return file;
  };
  const publicKeyOfCert = (pem: string) => openssl(['x509', '-noout', '-pubkey'], pem);
  const publicKeyOfKey = (keyFile: string) => openssl(['pkey', '-in', keyFile, '-pubout']);
  const verifies = async (leaf: string) => {
    const rootFile = write('root.pem', root);
    return openssl(['verify', '-CAfile', rootFile], leaf);
  };

  beforeAll(async () => {
    t = await startTestKernel();
    knex = t.kernel.db.knex;
    cacert = path.join(t.dataDir, 'tls', 'server.crt');
    expect((await t.api.post('/api/v1/issuers', { id: 'iss-est', name: 'EST CA', type: 'local-ca', config: {} })).status).toBe(201);
    await knex('certificate_profiles').insert([
      { id: 'prof-est-gated', name: 'EST with approval', requires_approval: true },
      { id: 'prof-est-strict', name: 'EST RSA-4096 only', allowed_key_algorithms: JSON.stringify([{ algorithm: 'RSA', min_size: 4096 }]) },
    ]);
    const res = await t.api.post('/api/v1/protocol-endpoints', {
      name: 'EST', type: 'est',
      config: {
        issuer_id: 'iss-est', auth: 'basic', username: 'device', password: PASSWORD,
        labels: {
          devices: { auth: 'client-certificate', csr_attributes: 'ecdsa-p256' },
          keygen: { server_keygen: true },
          gated: { profile_id: 'prof-est-gated' },
          strict: { profile_id: 'prof-est-strict' },
        },
      },
    });
    expect(res.status, res.text).toBe(201);
    expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  it('cacerts: anonymous, a base64 certs-only PKCS#7 that openssl prints as the issuer root', async () => {
    const res = await est('/cacerts');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/pkcs7-mime/);
    expect(res.headers['content-transfer-encoding']).toBe('base64');
    const certs = pemCerts(await printCerts(res.body));
    expect(certs).toHaveLength(1);
    root = certs[0];
    expect(await openssl(['x509', '-noout', '-subject'], root)).toMatch(/subject=\s*CN\s*=\s*certctl Local CA/);
  });

  it('simpleenroll with HTTP basic: a certificate for the CSR key, chaining to cacerts, in the inventory as an est enrolment', async () => {
    const csr = await newCsr(tmp.dir, 'sensor-1.est.test', { sans: ['sensor-1.est.test'] });
    const res = await enroll('/simpleenroll', csr.b64File, { user: `device:${PASSWORD}` });
    expect(res.status, res.body.toString()).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/pkcs7-mime/);
    const leaf = await leafOf(res);
    expect(await verifies(leaf)).toMatch(/OK/);
    expect(await publicKeyOfCert(leaf)).toBe(await publicKeyOfKey(csr.key));
    expect(await openssl(['x509', '-noout', '-subject'], leaf)).toMatch(/CN\s*=\s*sensor-1\.est\.test/);

    const serial = (await openssl(['x509', '-noout', '-serial'], leaf)).trim().split('=')[1].toLowerCase().replace(/^0+/, '');
    const row = (await knex('managed_certificates').whereRaw("tags->>'protocol' = 'est'").where({ common_name: 'sensor-1.est.test' }).first()) as Record<string, any>;
    expect(row).toMatchObject({ status: 'Active', issuer_id: 'iss-est' });
    expect(String(row.serial_number).replace(/^0+/, '')).toBe(serial);
    const audit = await knex('audit_events').where({ resource_id: row.id, action: 'certificate_created' }).first('actor', 'actor_type');
    expect(audit).toEqual({ actor: 'est/est-basic:device', actor_type: 'protocol' });
  });

  it('accepts a PEM CSR too', async () => {
    const csr = await newCsr(tmp.dir, 'sensor-pem.est.test');
    const res = await enroll('/simpleenroll', csr.pemFile, { user: `device:${PASSWORD}` });
    expect(res.status, res.body.toString()).toBe(200);
    expect(await publicKeyOfCert(await leafOf(res))).toBe(await publicKeyOfKey(csr.key));
  });

  it('a wrong or missing password is a 401 with a Basic challenge, and nothing is enrolled', async () => {
    const before = await estCertificates();
    const csr = await newCsr(tmp.dir, 'intruder.est.test');
    for (const user of [`device:wrong-password`, `other:${PASSWORD}`, undefined]) {
      const res = await enroll('/simpleenroll', csr.b64File, { user });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
    }
    expect(await estCertificates()).toBe(before);
  });

  it('an enrolment the kernel refuses (profile) is a 403 and leaves no managed certificate, each time; the refusal is audited', async () => {
    const before = await estCertificates();
    const refusals = () => knex('audit_events').where({ action: 'certificate_enrolment_refused' }).whereRaw("actor like 'est/%'").select('details');
    const audited = (await refusals()).length;
    const csr = await newCsr(tmp.dir, 'weak.est.test');
    for (let i = 0; i < 2; i++) {
      const res = await enroll('/strict/simpleenroll', csr.b64File, { user: `device:${PASSWORD}` });
      expect(res.status, res.body.toString()).toBe(403);
      expect(res.body.toString()).toMatch(/RSA/);
    }
    expect(await estCertificates()).toBe(before);
    expect(await knex('managed_certificates').where({ common_name: 'weak.est.test' })).toEqual([]);
    const refused = (await refusals()).slice(audited);
    expect(refused).toHaveLength(2);
    expect(JSON.stringify(refused[0])).toMatch(/breaks the rules/);
  });

  it('simplereenroll with the certificate being renewed as TLS client certificate renews the same managed certificate', async () => {
    const first = await newCsr(tmp.dir, 'router-1.est.test');
    const issued = await enroll('/simpleenroll', first.b64File, { user: `device:${PASSWORD}` });
    expect(issued.status).toBe(200);
    const certFile = write('router-1.pem', await leafOf(issued));
    const before = await estCertificates();

    const again = await newCsr(tmp.dir, 'router-1.est.test');
    const res = await enroll('/simplereenroll', again.b64File, { cert: certFile, key: first.key });
    expect(res.status, res.body.toString()).toBe(200);
    const renewed = await leafOf(res);
    expect(await verifies(renewed)).toMatch(/OK/);
    expect(await publicKeyOfCert(renewed)).toBe(await publicKeyOfKey(again.key));
    expect(await estCertificates()).toBe(before);
    const row = (await knex('managed_certificates').where({ common_name: 'router-1.est.test' }).first('id', 'status')) as { id: string; status: string };
    expect(row.status).toBe('Active');
    expect((await knex('certificate_versions').where({ certificate_id: row.id })).length).toBe(2);
  });

  it('simplereenroll without a client certificate, or with one this server did not issue, is refused (403)', async () => {
    const csr = await newCsr(tmp.dir, 'router-2.est.test');
    expect((await enroll('/simplereenroll', csr.b64File, { user: `device:${PASSWORD}` })).status).toBe(403);
    const selfSigned = write('self.pem', '');
    await openssl(['req', '-x509', '-key', csr.key, '-subj', '/CN=router-2.est.test', '-days', '1', '-out', selfSigned]);
    expect((await enroll('/simplereenroll', csr.b64File, { cert: selfSigned, key: csr.key })).status).toBe(403);
  });

  it('client-certificate auth on a label: a certificate from the issuer enrols, no certificate or an untrusted one does not', async () => {
    const owner = await newCsr(tmp.dir, 'gateway.est.test');
    const ownerCert = write('gateway.pem', await leafOf(await enroll('/simpleenroll', owner.b64File, { user: `device:${PASSWORD}` })));
    const csr = await newCsr(tmp.dir, 'gateway-child.est.test');
    const res = await enroll('/devices/simpleenroll', csr.b64File, { cert: ownerCert, key: owner.key });
    expect(res.status, res.body.toString()).toBe(200);
    const child = (await knex('managed_certificates').where({ common_name: 'gateway-child.est.test' }).first('id')) as { id: string };
    const audit = await knex('audit_events').where({ action: 'certificate_created', resource_id: child.id }).first('actor');
    expect(audit?.actor).toBe('est/est-client-cert:gateway.est.test');

    expect((await enroll('/devices/simpleenroll', csr.b64File, { user: `device:${PASSWORD}` })).status).toBe(403);
    const selfSigned = write('self-2.pem', '');
    await openssl(['req', '-x509', '-key', csr.key, '-subj', '/CN=gateway.est.test', '-days', '1', '-out', selfSigned]);
    expect((await enroll('/devices/simpleenroll', csr.b64File, { cert: selfSigned, key: csr.key })).status).toBe(403);
  });

  it('csrattrs: 204 without a preference; a label asking for P-256 gets CsrAttrs naming the curve', async () => {
    expect((await est('/csrattrs')).status).toBe(204);
    const res = await est('/devices/csrattrs');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/csrattrs');
    const parsed = await openssl(['asn1parse', '-inform', 'DER'], Buffer.from(res.body.toString('latin1').replace(/\s+/g, ''), 'base64'));
    expect(parsed).toContain('ecdsa-with-SHA256');
    expect(parsed).toContain('id-ecPublicKey');
    expect(parsed).toContain('prime256v1');
  });

  it('serverkeygen on a label that allows it: a PKCS#8 key and a certificate for that key; off elsewhere', async () => {
    const csr = await newCsr(tmp.dir, 'kiosk.est.test');
    expect((await enroll('/serverkeygen', csr.b64File, { user: `device:${PASSWORD}` })).status).toBe(404);
    const res = await enroll('/keygen/serverkeygen', csr.b64File, { user: `device:${PASSWORD}` });
    expect(res.status, res.body.toString()).toBe(200);
    const boundary = /boundary=([^;\s]+)/.exec(res.headers['content-type'])![1];
    const parts = res.body.toString('latin1').split(`--${boundary}`).slice(1, 3).map((p) => p.split('\r\n\r\n')[1].replace(/\s+/g, ''));
    const keyFile = write('kiosk.key', `-----BEGIN PRIVATE KEY-----\n${parts[0].replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`);
    const certs = pemCerts(await printCerts(Buffer.from(parts[1])));
    expect(certs).toHaveLength(1);
    expect(await publicKeyOfCert(certs[0])).toBe(await publicKeyOfKey(keyFile));
    expect(await publicKeyOfCert(certs[0])).not.toBe(await publicKeyOfKey(csr.key));
    expect(await openssl(['x509', '-noout', '-subject'], certs[0])).toMatch(/CN\s*=\s*kiosk\.est\.test/);
  });

  it('a profile that requires approval: 202 with Retry-After, then the same request collects the certificate once approved', async () => {
    const csr = await newCsr(tmp.dir, 'badge.est.test');
    const held = await enroll('/gated/simpleenroll', csr.b64File, { user: `device:${PASSWORD}` });
    expect(held.status).toBe(202);
    expect(Number(held.headers['retry-after'])).toBeGreaterThan(0);
    expect((await enroll('/gated/simpleenroll', csr.b64File, { user: `device:${PASSWORD}` })).status).toBe(202);
    const cert = (await knex('managed_certificates').where({ common_name: 'badge.est.test' }).first('id', 'status')) as { id: string; status: string };
    expect(cert.status).toBe('Pending');
    const job = (await knex('jobs').where({ certificate_id: cert.id, status: 'AwaitingApproval' }).first('id')) as { id: string };
    const approved = await t.api.post(`/api/v1/jobs/${job.id}/approve`, { reason: 'known badge' });
    expect(approved.status, approved.text).toBe(200);
    expect(await runJob(t, job.id)).toMatchObject({ status: 'Completed' });
    const res = await enroll('/gated/simpleenroll', csr.b64File, { user: `device:${PASSWORD}` });
    expect(res.status, res.body.toString()).toBe(200);
    expect(await publicKeyOfCert(await leafOf(res))).toBe(await publicKeyOfKey(csr.key));
  });

  it('malformed bodies, wrong content types, methods and paths get EST errors; nothing is enrolled and nothing is a 500', async () => {
    const before = await estCertificates();
    const user = `device:${PASSWORD}`;
    const good = await newCsr(tmp.dir, 'shape.est.test');
    const tamperedDer = Buffer.from(fs.readFileSync(good.b64File, 'utf8').replace(/\s+/g, ''), 'base64');
    tamperedDer[tamperedDer.length - 5] ^= 0xff;
    const cases: [string, Promise<CurlResult>, number][] = [
      ['not base64', enroll('/simpleenroll', write('junk.txt', 'this is not a CSR at all!'), { user }), 400],
      ['base64 of garbage', enroll('/simpleenroll', write('junk.b64', Buffer.from('0123456789abcdef').toString('base64')), { user }), 400],
      ['truncated DER', enroll('/simpleenroll', write('trunc.b64', tamperedDer.subarray(0, 40).toString('base64')), { user }), 400],
      ['bad signature', enroll('/simpleenroll', write('tampered.b64', tamperedDer.toString('base64')), { user }), 403],
      ['empty body', enroll('/simpleenroll', write('empty', ''), { user }), 400],
      ['JSON content type', enroll('/simpleenroll', good.b64File, { user, contentType: 'application/json' }), 415],
      ['GET on simpleenroll', est('/simpleenroll', { user }), 405],
      ['unknown operation', est('/fullcmc', { method: 'POST', user }), 404],
      ['unknown label', enroll('/nope/simpleenroll', good.b64File, { user }), 404],
      ['too deep', est('/a/b/cacerts'), 404],
      ['oversized body', enroll('/simpleenroll', write('big.b64', 'A'.repeat(70 * 1024)), { user }), 413],
    ];
    for (const [name, pending, status] of cases) {
      const res = await pending;
      expect(res.status, `${name}: ${res.body.toString().slice(0, 200)}`).toBe(status);
    }
    expect(await estCertificates()).toBe(before);
  });

  it('kernel-side failures are problem documents: a disabled endpoint is a 404, a failing plugin call a 503', async () => {
    const endpoint = (await knex('protocol_endpoints').where({ type: 'est' }).first('id')) as { id: string };
    expect((await t.api.put(`/api/v1/issuers/iss-est`, { enabled: false })).status).toBe(200);
    const failing = await est('/cacerts');
    expect(failing.status).toBe(503);
    expect(failing.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(failing.body.toString())).toMatchObject({ status: 503 });
    expect((await t.api.put(`/api/v1/issuers/iss-est`, { enabled: true })).status).toBe(200);

    expect((await t.api.put(`/api/v1/protocol-endpoints/${endpoint.id}`, { enabled: false })).status).toBe(200);
    const off = await est('/cacerts');
    expect(off.status).toBe(404);
    expect(off.headers['content-type']).toBe('application/problem+json');
    expect((await t.api.put(`/api/v1/protocol-endpoints/${endpoint.id}`, { enabled: true })).status).toBe(200);
    expect((await est('/cacerts')).status).toBe(200);
  });
});
