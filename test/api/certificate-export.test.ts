import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../plugins/runtime/test-pki.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { auditActions, insertIssuedCertificate, seedReferences } from '../lifecycle/cert-fixtures.js';

const base = '/api/v1/certificates';

describe.skipIf(POSTGRES_UNAVAILABLE)('certificate export (PEM, PKCS#12)', () => {
  let t: TestKernel;
  let pki: TestPki;
  let certId: string;
  let leafPem: string;
  let intermediatePem: string;

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false' } });
    await seedReferences(t.kernel.db.knex);
    pki = makeTestPki();
    // A two-level chain made by openssl: CA -> intermediate -> leaf.
    pki.openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Export Intermediate']);
    pki.write('int.ext', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    pki.openssl(['x509', '-req', '-in', 'int.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '10', '-extfile', 'int.ext', '-out', 'int.crt']);
    pki.csr('leaf', { sans: 'DNS:export.example.test' });
    pki.openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-days', '5', '-out', 'leaf.crt']);
    leafPem = pki.openssl(['x509', '-in', 'leaf.crt']);
    intermediatePem = pki.openssl(['x509', '-in', 'int.crt']);
    const serial = pki.openssl(['x509', '-in', 'leaf.crt', '-noout', '-serial']).trim().split('=')[1].toLowerCase();
    certId = await insertIssuedCertificate(t.kernel.db.knex, { common_name: 'export.example.test', serial_number: serial, profile_id: 'prof-std' });
    await t.kernel.db.knex('certificate_versions').insert({
      id: 'ver-export-1', certificate_id: certId, serial_number: serial, fingerprint_sha256: 'ab'.repeat(32),
      not_before: new Date(), not_after: new Date(Date.now() + 5 * 86_400_000), pem_chain: leafPem + intermediatePem,
    });
  });
  afterAll(async () => { pki?.cleanup(); await t?.stop(); });

  it('exports PEM with the leaf and the chain apart, and as a file download', async () => {
    const res = await t.api.get(`${base}/${certId}/export/pem`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ certificate_id: certId, version_id: 'ver-export-1', certificate_pem: leafPem, chain_pem: [intermediatePem], full_chain_pem: leafPem + intermediatePem });
    expect(JSON.stringify(res.body)).not.toMatch(/PRIVATE KEY/);

    const file = await t.api.get(`${base}/${certId}/export/pem?download=true`);
    expect(file.status).toBe(200);
    expect(file.headers['content-type']).toMatch(/application\/x-pem-file/);
    expect(file.headers['content-disposition']).toBe('attachment; filename="export.example.test.pem"');
    expect(file.text).toBe(leafPem + intermediatePem);
    // openssl reads the chain back and verifies the leaf against the CA with it.
    pki.write('exported.pem', file.text);
    pki.write('chain.pem', intermediatePem);
    expect(pki.openssl(['verify', '-CAfile', 'ca.crt', '-untrusted', 'chain.pem', 'exported.pem']).trim()).toMatch(/: OK$/);
  });

  it('exports a certificates-only PKCS#12 that openssl opens with the password', async () => {
    const res = await t.api.post(`${base}/${certId}/export/pkcs12`, { password: 'p12-secret' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-pkcs12');
    expect(res.headers['content-disposition']).toBe('attachment; filename="export.example.test.p12"');
    const p12 = pki.write('bundle.p12', '');
    (await import('node:fs')).writeFileSync(p12, res.raw);
    const info = pki.openssl(['pkcs12', '-in', p12, '-passin', 'pass:p12-secret', '-info', '-nokeys', '-nomacver']);
    expect(info).not.toMatch(/Shrouded Keybag|PKCS8 Keybag|PRIVATE KEY/);
    const certs = info.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];
    expect(certs).toEqual([leafPem, intermediatePem]);
    // The MAC checks out with the right password and fails with a wrong one.
    pki.openssl(['pkcs12', '-in', p12, '-passin', 'pass:p12-secret', '-noout']);
    expect(() => pki.openssl(['pkcs12', '-in', p12, '-passin', 'pass:wrong', '-noout'])).toThrow();
    // Java's keytool sees both as trusted certificate entries.
    const listing = execFileSync('keytool', ['-list', '-keystore', p12, '-storetype', 'PKCS12', '-storepass', 'p12-secret'], { encoding: 'utf8' });
    expect(listing.match(/trustedCertEntry/g)).toHaveLength(2);
  });

  it('audits each export with the serial', async () => {
    const actions = await auditActions(t.kernel.db.knex, certId);
    expect(actions.filter((a) => a.startsWith('export_'))).toEqual(['export_pem', 'export_pem', 'export_pkcs12']);
    const ev = await t.kernel.db.knex('audit_events').where({ resource_id: certId, action: 'export_pkcs12' }).first();
    expect(ev.details).toMatchObject({ version_id: 'ver-export-1', serial_number: expect.stringMatching(/^[0-9a-f]+$/) });
  });

  it('refuses unknown certificates, unissued ones, unknown versions and bad bodies', async () => {
    expect((await t.api.get(`${base}/mc-missing/export/pem`)).status).toBe(404);
    const unissued = await insertIssuedCertificate(t.kernel.db.knex, { status: 'Pending', serial_number: null });
    const res = await t.api.get(`${base}/${unissued}/export/pem`);
    expect(res.status).toBe(404);
    expect(res.body.error.message).toMatch(/not been issued/);
    expect((await t.api.get(`${base}/${certId}/export/pem?version_id=ver-nope`)).status).toBe(404);
    expect((await t.api.post(`${base}/${certId}/export/pkcs12`, { password: 42 })).status).toBe(400);
    expect((await t.api.post(`${base}/${certId}/export/pkcs12`, { private_key: true })).status).toBe(400);
  });

  it('needs cert.export: a viewer cannot export, an auditor cannot either', async () => {
    for (const role of ['viewer', 'auditor']) {
      const key = await t.keyWithRole(role);
      const res = await t.api.get(`${base}/${certId}/export/pem`, { key });
      expect([403, 404]).toContain(res.status);
    }
  });
});
