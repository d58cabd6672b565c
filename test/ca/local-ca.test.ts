import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaKeystore } from '../../kernel/src/ca/ca-keystore.js';
import { KernelCapabilityBroker } from '../../kernel/src/plugins/broker/capability-broker.js';
import { PluginCallError } from '../../kernel/src/plugins/host/contracts.js';
import { capturingLogger } from '../plugins/support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { CA_FIXTURE_PLUGINS_DIR, issueRequest, makeCsr, opensslVerifies, scratch, x509Text } from './ca-support.js';

const DAY = 86_400_000;
type Issued = { status: string; certificatePem: string; chainPem: string[]; reason?: string };

describe.skipIf(POSTGRES_UNAVAILABLE)('Local CA: self-signed mode', () => {
  let t: TestKernel;
  const captured = capturingLogger();
  const tmp = scratch();
  const db = () => t.kernel.db.knex;
  const call = async (issuerId: string, method: string, request: object = {}, plugin = 'local-ca') => (await t.kernel.pluginHost.call(plugin, issuerId, method, request as never)) as unknown as Issued;
  const createIssuer = async (id: string, config: object = {}, type = 'local-ca') => {
    const res = await t.api.post('/api/v1/issuers', { id, name: id, type, config });
    expect(res.status, res.text).toBe(201);
    return res;
  };
  const caRows = (issuerId: string) => db()('certificate_authorities').where({ issuer_id: issuerId });
  const keystore = () => new CaKeystore({ knex: db(), cipher: t.kernel.cipher, audit: t.kernel.audit, crypto: t.kernel.crypto, log: captured.log, configured: {} });

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_PLUGIN_DIRS: CA_FIXTURE_PLUGINS_DIR }, start: { log: captured.log } });
    const res = await createIssuer('iss-lca');
    expect(res.body.config).toEqual({ mode: 'self-signed', subject: 'CN=certctl Local CA', key_algorithm: 'ECDSA-P256', ca_validity_days: 3650, default_ttl_days: 90, max_ttl_days: 397 });
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  it('issues a certificate that openssl verifies against the generated root, with AKI/SKI, BC, KU, EKU and SAN', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'ignored.example.test', sans: ['ignored.example.test'] });
    const before = Date.now();
    const r = await call('iss-lca', 'issue', issueRequest(csr, { commonName: 'app.example.test', sans: ['api.example.test', '10.1.2.3'] }));
    expect(r.status).toBe('issued');
    expect(r.chainPem).toHaveLength(1);
    const root = r.chainPem[0];
    expect(opensslVerifies(tmp.dir, root, r.certificatePem).ok).toBe(true);

    const rootText = x509Text(root);
    expect(rootText).toMatch(/Subject: CN ?= ?certctl Local CA/);
    expect(rootText).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE/);
    expect(rootText).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    expect(rootText).toContain('ASN1 OID: prime256v1');
    const rootSki = /X509v3 Subject Key Identifier:\s+([0-9A-F:]+)/.exec(rootText)![1];

    const text = x509Text(r.certificatePem);
    expect(text).toMatch(/Subject: CN ?= ?app\.example\.test/);
    expect(text).toMatch(/Issuer: CN ?= ?certctl Local CA/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
    expect(text).toMatch(/X509v3 Subject Alternative Name:\s+DNS:app\.example\.test, DNS:api\.example\.test, IP Address:10\.1\.2\.3\n/);
    expect(text).toMatch(/X509v3 Subject Key Identifier:\s+[0-9A-F:]{59}/);
    expect(text).toMatch(new RegExp(`X509v3 Authority Key Identifier:\\s+(keyid:)?${rootSki}`));
    const cert = new crypto.X509Certificate(r.certificatePem);
    expect(Math.abs(Date.parse(cert.validTo) - (before + 90 * DAY))).toBeLessThan(5 * 60_000);
    expect(Date.parse(cert.validFrom)).toBeLessThanOrEqual(before);
    const audit = await db()('audit_events').where({ action: 'ca_created', resource_type: 'certificate_authority' });
    expect(audit.map((a) => a.details.issuer_id)).toContain('iss-lca');
  });

  it('adapts KeyUsage: RSA TLS keys get keyEncipherment; S/MIME gets nonRepudiation and its email SAN', async () => {
    const rsa = await call('iss-lca', 'issue', issueRequest(makeCsr(tmp.dir, { key: 'rsa', cn: 'rsa.example.test' }), { commonName: 'rsa.example.test', ekus: ['serverAuth', 'clientAuth'] }));
    expect(rsa.status).toBe('issued');
    const rsaText = x509Text(rsa.certificatePem);
    expect(rsaText).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
    expect(rsaText).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(rsaText).toMatch(/DNS:rsa\.example\.test/);

    const mail = await call('iss-lca', 'issue', issueRequest(makeCsr(tmp.dir, { cn: 'Alice Example' }), { commonName: 'Alice Example', sans: ['alice@example.test'], ekus: ['emailProtection'] }));
    expect(mail.status).toBe('issued');
    const mailText = x509Text(mail.certificatePem);
    expect(mailText).toMatch(/Subject: CN ?= ?Alice Example/);
    expect(mailText).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Non Repudiation, Key Agreement\n/);
    expect(mailText).toMatch(/X509v3 Extended Key Usage:\s+E-mail Protection\n/);
    expect(mailText).toMatch(/X509v3 Subject Alternative Name:\s+email:alice@example\.test\n/);
    expect(opensslVerifies(tmp.dir, mail.chainPem[0], mail.certificatePem).ok).toBe(true);
  });

  it('caps lifetimes at the profile max TTL and at the CA notAfter, and refuses a past notAfter', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'ttl.example.test' });
    const capped = await call('iss-lca', 'issue', issueRequest(csr, { commonName: 'ttl.example.test', notAfter: new Date(Date.now() + 200 * DAY).toISOString(), maxTtlSeconds: 3600 }));
    expect(capped.status).toBe('issued');
    expect(Date.parse(new crypto.X509Certificate(capped.certificatePem).validTo)).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);

    await createIssuer('iss-short', { ca_validity_days: 2, max_ttl_days: 30 });
    const short = await call('iss-short', 'issue', issueRequest(csr, { commonName: 'ttl.example.test', notAfter: new Date(Date.now() + 20 * DAY).toISOString() }));
    expect(short.status).toBe('issued');
    expect(new crypto.X509Certificate(short.certificatePem).validTo).toBe(new crypto.X509Certificate(short.chainPem[0]).validTo);

    const past = await call('iss-lca', 'issue', issueRequest(csr, { commonName: 'ttl.example.test', notAfter: new Date(Date.now() - DAY).toISOString() }));
    expect(past).toMatchObject({ status: 'denied' });
  });

  it('gives every certificate a distinct random serial, also under concurrent issuance', async () => {
    const csrs = Array.from({ length: 4 }, (_, i) => makeCsr(tmp.dir, { cn: `s${i}.example.test` }));
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => call('iss-lca', 'issue', issueRequest(csrs[i % 4], { commonName: `s${i % 4}.example.test` }))));
    const serials = results.map((r) => new crypto.X509Certificate(r.certificatePem).serialNumber);
    expect(new Set(serials).size).toBe(24);
    for (const s of serials) expect(s.length).toBeGreaterThanOrEqual(24);
  });

  it('denies damaged and tampered CSRs without signing anything', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'bad.example.test' });
    const damaged = await call('iss-lca', 'issue', issueRequest('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', { commonName: 'bad.example.test' }));
    expect(damaged.status).toBe('denied');
    const tampered = await call('iss-lca', 'issue', issueRequest(tamperedCsr(csr), { commonName: 'bad.example.test' }));
    expect(tampered.status).toBe('denied');
  });

  it('keeps the CA key sealed in the database; it never appears in API responses or log lines', async () => {
    const rows = await caRows('iss-lca');
    expect(rows).toHaveLength(1);
    const row = rows[0];
    expect(row).toMatchObject({ source: 'generated', status: 'active', key_algorithm: 'ECDSA-P256', parent_id: null, subject: 'CN=certctl Local CA' });
    expect(row.id).toMatch(/^ca-[0-9a-f]{16}$/);
    expect(row.encrypted_key).not.toMatch(/BEGIN|PRIVATE/);
    const keyPem = t.kernel.cipher.decrypt(row.encrypted_key);
    const key = crypto.createPrivateKey(keyPem);
    expect(crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).equals(new crypto.X509Certificate(row.certificate_pem).publicKey.export({ format: 'der', type: 'spki' }))).toBe(true);
    expect(row.fingerprint_sha256).toBe(new crypto.X509Certificate(row.certificate_pem).fingerprint256.replace(/:/g, '').toLowerCase());

    const secrets = [keyPem.split('\n')[1], keyPem.split('\n')[2], key.export({ format: 'der', type: 'pkcs8' }).toString('base64').slice(-40), key.export({ format: 'der', type: 'pkcs8' }).toString('hex').slice(-40)];
    const responses = await Promise.all(['/api/v1/issuers/iss-lca', '/api/v1/issuers', '/api/v1/audit?per_page=500'].map((p) => t.api.get(p)));
    for (const res of responses) expect(res.status).toBe(200);
    const seen = responses.map((r) => r.text).join('\n') + captured.text() + JSON.stringify(await db()('audit_events').select('details'));
    for (const s of secrets) expect(seen.includes(s), `key material ${s.slice(0, 8)}... leaked`).toBe(false);
    expect(seen).not.toContain('PRIVATE KEY');
  });

  it('answers getCaChain and validateConfig from the same CA', async () => {
    const chain = (await call('iss-lca', 'getCaChain')) as unknown as { chainPem: string[] };
    const [row] = await caRows('iss-lca');
    expect(chain.chainPem).toEqual([row.certificate_pem]);
    expect(await call('iss-lca', 'validateConfig')).toEqual({ ok: true });
  });

  it('makes exactly one CA when ensure races, across replicas and across concurrent plugin calls', async () => {
    await createIssuer('iss-race-a');
    const [a, b] = [keystore(), keystore()];
    const req = { source: 'generate' as const, subject: 'CN=Race CA', keyAlgorithm: 'ECDSA-P256' as const, validityDays: 30 };
    const infos = await Promise.all([a.ensure('iss-race-a', req), b.ensure('iss-race-a', req), a.ensure('iss-race-a', req), b.ensure('iss-race-a', req)]);
    expect(new Set(infos.map((i) => i.caId)).size).toBe(1);
    expect(await caRows('iss-race-a')).toHaveLength(1);
    expect(await db()('audit_events').where({ action: 'ca_created', resource_id: infos[0].caId })).toHaveLength(1);

    await createIssuer('iss-race-b', { key_algorithm: 'ECDSA-P384' });
    const csr = makeCsr(tmp.dir, { cn: 'race.example.test' });
    const results = await Promise.all(Array.from({ length: 6 }, () => call('iss-race-b', 'issue', issueRequest(csr, { commonName: 'race.example.test' }))));
    expect(results.every((r) => r.status === 'issued')).toBe(true);
    const rows = await caRows('iss-race-b');
    expect(rows).toHaveLength(1);
    expect(rows[0].key_algorithm).toBe('ECDSA-P384');
    expect(new Set(results.map((r) => r.chainPem[0])).size).toBe(1);
  });

  it('reports sub-CA mode without CERTCTL_CA_CERT_PATH/KEY_PATH as a non-retryable failure, and validateConfig says why', async () => {
    await createIssuer('iss-unconfigured', { mode: 'sub-ca' });
    const r = await call('iss-unconfigured', 'issue', issueRequest(makeCsr(tmp.dir, { cn: 'x.example.test' }), { commonName: 'x.example.test' }));
    expect(r).toMatchObject({ status: 'failed', retryable: false, reason: expect.stringMatching(/needs CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH/) });
    expect(await call('iss-unconfigured', 'validateConfig')).toMatchObject({ ok: false, reason: expect.stringMatching(/CERTCTL_CA_CERT_PATH/) });
    expect(await caRows('iss-unconfigured')).toHaveLength(0);
  });

  it('refuses to delete an issuer that holds a CA (409 in_use) and keeps the CA', async () => {
    const res = await t.api.delete('/api/v1/issuers/iss-short');
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('in_use');
    expect(await caRows('iss-short')).toHaveLength(1);
    expect((await t.api.get('/api/v1/issuers/iss-short')).status).toBe(200);
  });

  it('refuses ctx.ca to a plugin without the ca grant, and scopes it to the call\'s own issuer instance', async () => {
    await createIssuer('iss-nogrant', {}, 'no-ca-grant-issuer');
    const csr = makeCsr(tmp.dir, { cn: 'sneaky.example.test' });
    const refused = await call('iss-nogrant', 'issue', issueRequest(csr, { commonName: 'sneaky.example.test' }), 'no-ca-grant-issuer').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PluginCallError);
    expect(refused).toMatchObject({ code: 'capability_denied' });
    expect((refused as Error).message).toMatch(/ca\.ensure is not granted/);
    expect(await caRows('iss-nogrant')).toHaveLength(0);

    await db()('targets').insert({ id: 'tgt-ca-test', name: 'a target', type: 'nginx' });
    const broker = new KernelCapabilityBroker({ knex: db(), cipher: t.kernel.cipher, audit: t.kernel.audit, log: captured.log, caKeystore: keystore() });
    const ensure = { op: 'ca.ensure' as const, request: { source: 'generate', subject: 'CN=x', keyAlgorithm: 'ECDSA-P256', validityDays: 30 } };
    const ctx = (pluginId: string, instanceId: string | null, grants: object = { ca: true }) => ({ pluginId, instanceId, grants, deadline: Date.now() + 30_000 });
    for (const [c, why] of [
      [ctx('local-ca', null), /needs a call on an issuer instance/],
      [ctx('local-ca', 'tgt-ca-test'), /not an issuer instance of plugin local-ca/],
      [ctx('local-ca', 'iss-nogrant'), /not an issuer instance of plugin local-ca/],
      [ctx('no-ca-grant-issuer', 'iss-lca'), /not an issuer instance/],
      [ctx('local-ca', 'iss-lca', {}), /not granted/],
    ] as const) {
      const err = await broker.handle(c, ensure).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'capability_denied' });
      expect((err as Error).message).toMatch(why);
    }
    expect(await db()('certificate_authorities').whereIn('issuer_id', ['tgt-ca-test', 'iss-nogrant']).count({ n: '*' }).first()).toMatchObject({ n: 0 });
    await expect(new KernelCapabilityBroker({ knex: db(), cipher: t.kernel.cipher, audit: t.kernel.audit, log: captured.log }).handle(ctx('local-ca', 'iss-lca'), ensure)).rejects.toMatchObject({ code: 'capability_denied' });
  });

  it('checks every ca request from the plugin strictly before using it', async () => {
    await createIssuer('iss-probe', {}, 'ca-probe-issuer');
    const csr = makeCsr(tmp.dir, { cn: 'probe.example.test' });
    const probe = async (op: 'ensure' | 'sign', request: unknown) => call('iss-probe', 'issue', { ...issueRequest(csr, { commonName: op }), sans: [JSON.stringify(request)] }, 'ca-probe-issuer');
    const notAfter = new Date(Date.now() + 10 * DAY).toISOString();

    expect(await probe('sign', { csrPem: csr, notAfter })).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^ca_missing: .*call ca.ensure first/) });
    for (const [bad, why] of [
      [{ source: 'generate', subject: 'CN=x', keyAlgorithm: 'ECDSA-P256', validityDays: 30, extra: 1 }, /unknown field "extra"/],
      [{ source: 'generate', subject: 'CN=x', keyAlgorithm: 'DSA-1024', validityDays: 30 }, /keyAlgorithm must be one of/],
      [{ source: 'generate', subject: 'CN=x', keyAlgorithm: 'ECDSA-P256', validityDays: 1e9 }, /validityDays/],
      [{ source: 'elsewhere' }, /source must be/],
      [{ source: 'generate', subject: 'not a dn', keyAlgorithm: 'ECDSA-P256', validityDays: 30 }, /not a distinguished name/],
    ] as const) {
      expect(await probe('ensure', bad)).toMatchObject({ status: 'failed', reason: expect.stringMatching(why) });
    }
    expect(await caRows('iss-probe')).toHaveLength(0);
    expect(await probe('ensure', { source: 'generate', subject: 'CN=Probe CA', keyAlgorithm: 'RSA-2048', validityDays: 30 })).toMatchObject({ status: 'denied', reason: expect.stringMatching(/^ensured ca-/) });

    for (const [bad, why] of [
      [{ csrPem: csr, notAfter, keyUsage: ['digitalSignature', 'keyCertSign'] }, /keyUsage has an invalid entry "keyCertSign"/],
      [{ csrPem: csr, notAfter, extendedKeyUsage: ['bogus'] }, /extendedKeyUsage has an invalid entry/],
      [{ csrPem: csr, notAfter, basicConstraints: { ca: true } }, /unknown field "basicConstraints"/],
      [{ csrPem: csr, notAfter: 'tomorrow' }, /notAfter must be an ISO 8601/],
      [{ csrPem: 42, notAfter }, /csrPem must be a PEM/],
      [{ csrPem: csr, notAfter, sans: ['a b'] }, /sans has an invalid entry/],
      [{ csrPem: csr, notAfter, sans: ['-bad-$name'] }, /bad_request: SAN/],
    ] as const) {
      expect(await probe('sign', bad)).toMatchObject({ status: 'failed', reason: expect.stringMatching(why) });
    }
    const ok = await probe('sign', { csrPem: csr, notAfter, keyUsage: ['digitalSignature'], extendedKeyUsage: ['clientAuth'] });
    expect(ok.status).toBe('issued');
    const text = x509Text(ok.certificatePem);
    expect(text).toMatch(/CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/TLS Web Client Authentication/);
    expect(opensslVerifies(tmp.dir, ok.chainPem[0], ok.certificatePem).ok).toBe(true);
  });

  it('signs a sign order from issue as ca.sign would: the same checks, a refused order is denied, a CA problem failed', async () => {
    await createIssuer('iss-order', {}, 'ca-probe-issuer');
    const csr = makeCsr(tmp.dir, { cn: 'order.example.test' });
    const order = async (request: unknown, op = 'order') => call('iss-order', 'issue', { ...issueRequest(csr, { commonName: op }), sans: [JSON.stringify(request)] }, 'ca-probe-issuer');
    const notAfter = new Date(Date.now() + 10 * DAY).toISOString();
    // No CA yet: the operator's (non-retryable) problem, as from ca.sign.
    expect(await order({ csrPem: csr, notAfter })).toMatchObject({ status: 'failed', retryable: false, reason: expect.stringMatching(/call ca.ensure first/) });
    await order({ source: 'generate', subject: 'CN=Order CA', keyAlgorithm: 'ECDSA-P256', validityDays: 30 }, 'ensure');
    for (const [bad, why] of [
      [{ csrPem: csr, notAfter, keyUsage: ['keyCertSign'] }, /keyUsage has an invalid entry "keyCertSign"/],
      [{ csrPem: csr, notAfter, basicConstraints: { ca: true } }, /unknown field "basicConstraints"/],
      [{ csrPem: csr, notAfter: 'tomorrow' }, /notAfter must be an ISO 8601/],
      [{ csrPem: tamperedCsr(csr), notAfter }, /./],
    ] as const) {
      expect(await order(bad)).toMatchObject({ status: 'denied', reason: expect.stringMatching(why) });
    }
    const ok = await order({ csrPem: csr, notAfter, extendedKeyUsage: ['clientAuth'] });
    expect(ok.status).toBe('issued');
    expect(x509Text(ok.certificatePem)).toMatch(/TLS Web Client Authentication/);
    expect(opensslVerifies(tmp.dir, ok.chainPem[0], ok.certificatePem).ok).toBe(true);
  });
});

/** The CSR with one base64 character of its signature changed: it still parses, its signature no longer verifies. */
function tamperedCsr(csr: string): string {
  const lines = csr.trim().split('\n');
  const last = lines[lines.length - 2];
  lines[lines.length - 2] = last.slice(0, -6) + (last.slice(-6, -5) === 'A' ? 'B' : 'A') + last.slice(-5);
  return `${lines.join('\n')}\n`;
}
