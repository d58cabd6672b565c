import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaKeystore } from '../../kernel/src/ca/ca-keystore.js';
import type { ConfiguredCaPaths } from '../../kernel/src/ca/configured-ca.js';
import { capturingLogger } from '../plugins/support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { issueRequest, makeCsr, makeOperatorPki, openssl, opensslVerifies, scratch, x509Text } from './ca-support.js';

type Issued = { status: string; certificatePem: string; chainPem: string[]; reason?: string; retryable?: boolean };

describe.skipIf(POSTGRES_UNAVAILABLE)('Local CA: sub-CA mode from CERTCTL_CA_CERT_PATH / CERTCTL_CA_KEY_PATH', () => {
  let t: TestKernel;
  const captured = capturingLogger();
  const tmp = scratch();
  const pki = makeOperatorPki(tmp.dir, 'acme');
  const db = () => t.kernel.db.knex;
  const keystore = (configured: ConfiguredCaPaths) => new CaKeystore({ knex: db(), cipher: t.kernel.cipher, audit: t.kernel.audit, crypto: t.kernel.crypto, log: captured.log, configured, cacheMs: 0 });
  const ensureConfigured = (ks: CaKeystore, issuerId = 'iss-sub') => ks.ensure(issuerId, { source: 'configured' });

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_CA_CERT_PATH: pki.bundlePath, CERTCTL_CA_KEY_PATH: pki.keyPath }, start: { log: captured.log } });
    const res = await t.api.post('/api/v1/issuers', { id: 'iss-sub', name: 'Acme sub-CA', type: 'local-ca', config: { mode: 'sub-ca' } });
    expect(res.status, res.text).toBe(201);
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  it('signs with the operator\'s intermediate: the chain verifies with openssl up to the operator\'s root', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'svc.acme.test' });
    const r = (await t.kernel.pluginHost.call('local-ca', 'iss-sub', 'issue', issueRequest(csr, { commonName: 'svc.acme.test' }) as never)) as unknown as Issued;
    expect(r.status).toBe('issued');
    expect(r.chainPem).toEqual([pki.intermediatePem, pki.rootPem]);
    expect(opensslVerifies(tmp.dir, pki.rootPem, r.certificatePem, [pki.intermediatePem]).ok).toBe(true);
    expect(opensslVerifies(tmp.dir, pki.rootPem, r.certificatePem).ok).toBe(false);

    const text = x509Text(r.certificatePem);
    expect(text).toMatch(/Issuer: CN ?= ?acme Issuing CA/);
    const intSki = /X509v3 Subject Key Identifier:\s+([0-9A-F:]+)/.exec(x509Text(pki.intermediatePem))![1];
    expect(text).toMatch(new RegExp(`X509v3 Authority Key Identifier:\\s+(keyid:)?${intSki}`));
    expect(text).toMatch(/CA:FALSE/);
    expect(text).toMatch(/DNS:svc\.acme\.test/);

    const rows = await db()('certificate_authorities').where({ issuer_id: 'iss-sub' });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ source: 'configured', status: 'active', encrypted_key: null, key_algorithm: 'ECDSA-P256', certificate_pem: pki.intermediatePem, chain_pem: pki.rootPem });
    // The operator's key stays in the operator's file: nothing of it is stored or logged.
    const keyDer = crypto.createPrivateKey(fs.readFileSync(pki.keyPath, 'utf8')).export({ format: 'der', type: 'pkcs8' }).toString('base64');
    const stored = JSON.stringify(await db()('certificate_authorities').select()) + JSON.stringify(await db()('audit_events').select('details')) + captured.text();
    expect(stored.includes(keyDer.slice(-40))).toBe(false);
    expect(stored).not.toContain('PRIVATE KEY');
    expect(await t.kernel.pluginHost.call('local-ca', 'iss-sub', 'validateConfig', {})).toEqual({ ok: true });
  });

  it('refuses a certificate that is not a CA, one without keyCertSign, a mismatched key, a broken chain and missing settings', async () => {
    const notCa = makeOperatorPki(tmp.dir, 'leafy', { ca: false });
    const noSign = makeOperatorPki(tmp.dir, 'nosign', { keyCertSign: false });
    const other = makeOperatorPki(tmp.dir, 'other');
    const reversed = tmp.file('reversed.crt');
    fs.writeFileSync(reversed, pki.rootPem + pki.intermediatePem);
    const encrypted = tmp.file('encrypted.key');
    openssl(['pkey', '-in', pki.keyPath, '-aes256', '-passout', 'pass:secret-pass', '-out', encrypted]);
    await t.api.post('/api/v1/issuers', { id: 'iss-bad', name: 'bad sub-CA', type: 'local-ca', config: { mode: 'sub-ca' } });

    for (const [paths, code, why] of [
      [{ certPath: notCa.certPath, keyPath: notCa.keyPath }, 'ca_invalid', /is not a CA certificate \(BasicConstraints CA:TRUE is missing\)/],
      [{ certPath: noSign.certPath, keyPath: noSign.keyPath }, 'ca_invalid', /may not sign certificates \(KeyUsage keyCertSign is missing\)/],
      [{ certPath: pki.certPath, keyPath: other.keyPath }, 'ca_invalid', /is not the private key of the certificate in CERTCTL_CA_CERT_PATH/],
      [{ certPath: reversed, keyPath: pki.keyPath }, 'ca_invalid', /not a CA certificate|did not sign/],
      [{ certPath: pki.certPath, keyPath: encrypted }, 'ca_invalid', /holds an encrypted key/],
      [{ certPath: tmp.file('missing.crt'), keyPath: pki.keyPath }, 'ca_invalid', /CERTCTL_CA_CERT_PATH \(.*missing\.crt\) cannot be read: ENOENT/],
      [{ certPath: pki.keyPath, keyPath: pki.keyPath }, 'ca_invalid', /holds no PEM certificate/],
      [{}, 'ca_not_configured', /needs CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH/],
    ] as const) {
      const err = await ensureConfigured(keystore(paths), 'iss-bad').catch((e: unknown) => e);
      expect(err, JSON.stringify(paths)).toMatchObject({ name: 'CaError', code });
      expect((err as Error).message).toMatch(why);
      expect((err as Error).message).not.toMatch(/BEGIN|secret-pass/);
    }
    expect(await db()('certificate_authorities').where({ issuer_id: 'iss-bad' })).toHaveLength(0);
  });

  it('follows the operator replacing the files: the new CA becomes active and the old one is retiring', async () => {
    const files = { certPath: tmp.file('rotating.crt'), keyPath: tmp.file('rotating.key') };
    fs.copyFileSync(pki.certPath, files.certPath);
    fs.copyFileSync(pki.keyPath, files.keyPath);
    await t.api.post('/api/v1/issuers', { id: 'iss-rotate', name: 'rotating sub-CA', type: 'local-ca', config: { mode: 'sub-ca' } });
    const ks = keystore(files);
    const first = await ensureConfigured(ks, 'iss-rotate');
    expect(await ensureConfigured(ks, 'iss-rotate')).toEqual(first);
    expect(first.chainPem).toEqual([pki.intermediatePem]);

    const next = makeOperatorPki(tmp.dir, 'acme-next');
    fs.copyFileSync(next.bundlePath, files.certPath);
    fs.copyFileSync(next.keyPath, files.keyPath);
    const second = await ensureConfigured(ks, 'iss-rotate');
    expect(second.caId).not.toBe(first.caId);
    expect(second.chainPem).toEqual([next.intermediatePem, next.rootPem]);
    const rows = await db()('certificate_authorities').where({ issuer_id: 'iss-rotate' }).orderBy('created_at');
    expect(rows.map((r) => [r.id, r.status])).toEqual([[first.caId, 'retiring'], [second.caId, 'active']]);
    const actions = (await db()('audit_events').where({ resource_type: 'certificate_authority' }).whereIn('resource_id', [first.caId, second.caId]).orderBy('seq')).map((a) => a.action);
    expect(actions).toEqual(['ca_created', 'ca_retiring', 'ca_created']);

    const csr = makeCsr(tmp.dir, { cn: 'rotated.acme.test' });
    const signed = await ks.sign('iss-rotate', { csrPem: csr, notAfter: new Date(Date.now() + 86_400_000).toISOString(), extendedKeyUsage: ['serverAuth'] });
    expect(opensslVerifies(tmp.dir, next.rootPem, signed.certificatePem, [next.intermediatePem]).ok).toBe(true);
  });

  it('switching an issuer from self-signed to sub-CA retires the generated root', async () => {
    await t.api.post('/api/v1/issuers', { id: 'iss-switch', name: 'switching', type: 'local-ca', config: {} });
    const ks = keystore({ certPath: pki.bundlePath, keyPath: pki.keyPath });
    const root = await ks.ensure('iss-switch', { source: 'generate', subject: 'CN=Switch Root', keyAlgorithm: 'ECDSA-P256', validityDays: 30 });
    expect(root.source).toBe('generated');
    const sub = await ensureConfigured(ks, 'iss-switch');
    expect(sub.source).toBe('configured');
    const rows = await db()('certificate_authorities').where({ issuer_id: 'iss-switch' }).orderBy('created_at');
    expect(rows.map((r) => [r.source, r.status])).toEqual([['generated', 'retiring'], ['configured', 'active']]);
  });
});
