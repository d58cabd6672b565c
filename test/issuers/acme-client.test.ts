import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import { certificateMatchesCsr, createTestHost } from '@certctl/sdk/testing';
import plugin from '../../plugins/issuers/acme/dist/index.js';
import { startPebble, type Pebble } from '../../plugins/issuers/acme/dist/pebble-harness.js';
import { ariCertId } from '../../plugins/issuers/acme/dist/der.js';
import { csrFor, issueRequest } from './acme-fixtures.js';

/**
 * The ACME issuer plugin against a real Pebble (Debian package) with
 * pebble-challtestsrv as its DNS: issue over http-01 (answered from the plugin's
 * kv, as the kernel route does), ARI renewal info and a renewal carrying
 * `replaces`, revocation seen in Pebble's management interface, and the unhappy
 * paths. Pebble 2.4 has no ARI, so the ARI shim in front of it adds renewalInfo.
 */
describe('ACME issuer plugin against Pebble', () => {
  let pebble: Pebble;
  const kv = new Map<string, Json>();
  // The http-01 responder waits on this gate while a test holds the CA's validation open.
  let gate: Promise<void> = Promise.resolve();
  const hostFor = (config: Record<string, Json>, secrets: Record<string, string> = {}, timeoutMs = 30_000) => createTestHost({
    plugin, pluginId: 'acme', instanceId: 'iss-pebble', kv, features: ['renew', 'revoke'], grants: { kv: true }, timeoutMs, secrets,
    config: { email: 'pki@certctl.test', ca_certificates_pem: pebble.tlsCaPem, ...config },
  });

  beforeAll(async () => {
    pebble = await startPebble({ alternateRoots: 1, keyAuthorization: async (token) => {
      await gate;
      return kv.get(`http01:${token}`) as string | undefined;
    } });
  });
  afterAll(async () => {
    await pebble?.stop();
  });

  const names = ['shop.certctl.test', 'www.shop.certctl.test'];
  let first: { certificatePem: string; chainPem: string[] };

  it('issues over http-01: a certificate for the CSR key, chained to the CA, account key kept, challenges taken down', async () => {
    const host = hostFor({ directory_url: pebble.ariDirectoryUrl });
    const csrPem = csrFor(names);
    const out = (await host.call('issue', issueRequest('mc-shop', csrPem, names))) as any;
    expect(out.status, JSON.stringify(out)).toBe('issued');
    const leaf = new crypto.X509Certificate(out.certificatePem);
    expect(leaf.subjectAltName).toContain('DNS:shop.certctl.test');
    expect(leaf.subjectAltName).toContain('DNS:www.shop.certctl.test');
    expect(certificateMatchesCsr(out.certificatePem, csrPem)).toBe(true);
    expect(out.chainPem.length).toBeGreaterThan(0);
    expect(leaf.verify(new crypto.X509Certificate(out.chainPem[0]).publicKey)).toBe(true);
    expect(kv.get('account-key:iss-pebble')).toMatch(/BEGIN PRIVATE KEY/);
    expect([...kv.keys()].filter((k) => k.startsWith('http01:'))).toEqual([]);
    first = out;
  });

  it('reports the CA\'s ARI window and renews with `replaces` naming the old certificate', async () => {
    const host = hostFor({ directory_url: pebble.ariDirectoryUrl });
    const info = (await host.call('renewalInfo', { certificatePem: first.certificatePem })) as any;
    const leaf = new crypto.X509Certificate(first.certificatePem);
    const life = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    expect(Math.abs(Date.parse(info.suggestedWindow.start) - (Date.parse(leaf.validFrom) + (life * 2) / 3))).toBeLessThan(2000);
    expect(Date.parse(info.suggestedWindow.end)).toBeGreaterThan(Date.parse(info.suggestedWindow.start));
    expect(info.retryAfterSeconds).toBe(21600);
    expect(pebble.ari.lookups).toContain(ariCertId(first.certificatePem));

    // The CA moves the window to now: the certificate is due, and the renewal names it.
    pebble.ari.window = { start: new Date(Date.now() - 3600_000).toISOString(), end: new Date(Date.now() + 3600_000).toISOString() };
    const due = (await host.call('renewalInfo', { certificatePem: first.certificatePem })) as any;
    expect(Date.parse(due.suggestedWindow.start)).toBeLessThanOrEqual(Date.now());
    const renewed = (await host.call('renew', { ...issueRequest('mc-shop', csrFor(names), names), previousSerialNumber: leaf.serialNumber })) as any;
    expect(renewed.status, JSON.stringify(renewed)).toBe('issued');
    expect(new crypto.X509Certificate(renewed.certificatePem).serialNumber).not.toBe(leaf.serialNumber);
    expect(pebble.ari.orders.at(-1)?.replaces).toBe(ariCertId(first.certificatePem));
    expect(pebble.ari.orders.at(-2)?.replaces).toBeUndefined();
    first = renewed;
  });

  it('revokes by account key with the reason code; Pebble reports it revoked', async () => {
    const host = hostFor({ directory_url: pebble.ariDirectoryUrl });
    const leaf = new crypto.X509Certificate(first.certificatePem);
    const out = (await host.call('revoke', { serialNumber: leaf.serialNumber, certificatePem: first.certificatePem, reason: 'keyCompromise' })) as any;
    expect(out).toEqual({ status: 'revoked' });
    const status = await pebble.management(`/cert-status-by-serial/${leaf.serialNumber.toLowerCase().replace(/^0+/, '')}`);
    expect(status.status).toBe(200);
    expect(JSON.parse(status.body)).toMatchObject({ Status: 'Revoked', Reason: 1 });
    // Revoking it again is still "revoked" (the CA says alreadyRevoked).
    expect(await host.call('revoke', { serialNumber: leaf.serialNumber, certificatePem: first.certificatePem, reason: 'keyCompromise' })).toEqual({ status: 'revoked' });
    // Without the certificate ACME cannot revoke.
    expect(await host.call('revoke', { serialNumber: leaf.serialNumber, reason: 'superseded' })).toMatchObject({ status: 'failed', retryable: false });
  });

  it('orders with the configured ACME profile and takes the preferred alternate chain', async () => {
    pebble.ari.profiles = { classic: 'the default', shortlived: 'six-day certificates' };
    try {
      const altRoot = new crypto.X509Certificate((await pebble.management('/roots/1')).body);
      const altCn = /CN=([^\n,]+)/.exec(altRoot.subject)![1];
      const n = ['chain.certctl.test'];
      const plain = (await hostFor({ directory_url: pebble.ariDirectoryUrl }).call('issue', issueRequest('mc-chain', csrFor(n), n))) as any;
      expect(new crypto.X509Certificate(plain.chainPem.at(-1)).issuer).not.toContain(altCn);
      expect(pebble.ari.orders.at(-1)?.profile).toBeUndefined();

      const host = hostFor({ directory_url: pebble.ariDirectoryUrl, profile: 'shortlived', preferred_chain: altCn });
      expect(await host.call('validateConfig', {})).toEqual({ ok: true });
      const out = (await host.call('issue', issueRequest('mc-chain', csrFor(n), n))) as any;
      expect(out.status, JSON.stringify(out)).toBe('issued');
      expect(pebble.ari.orders.at(-1)?.profile).toBe('shortlived');
      const top = new crypto.X509Certificate(out.chainPem.at(-1));
      expect(top.issuer).toContain(altCn);
      expect(top.verify(altRoot.publicKey)).toBe(true);
    } finally {
      pebble.ari.profiles = null;
    }
  });

  it('validateConfig reaches the directory; a bad URL, a non-ACME URL and an unknown profile are reported', async () => {
    expect(await hostFor({ directory_url: pebble.directoryUrl }).call('validateConfig', {})).toEqual({ ok: true });
    expect(await hostFor({ directory_url: 'https://127.0.0.1:1/dir' }).call('validateConfig', {})).toEqual({ ok: false, reason: 'acme: connecting to 127.0.0.1:1 failed: ECONNREFUSED' });
    // The right host, but a TLS certificate the issuer does not trust (no ca_certificates_pem).
    const untrusted = await hostFor({ directory_url: pebble.directoryUrl, ca_certificates_pem: null }).call('validateConfig', {}) as any;
    expect(untrusted.reason).toMatch(/failed: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
    const notAcme = await hostFor({ directory_url: `${pebble.managementUrl}/roots/0` }).call('validateConfig', {}) as any;
    expect(notAcme).toMatchObject({ ok: false });
    expect(notAcme.reason).toMatch(/not an ACME directory/);
    expect(await hostFor({ directory_url: 'https://169.254.169.254/dir' }).call('validateConfig', {})).toEqual({ ok: false, reason: 'acme: refusing request to 169.254.169.254: link-local and unspecified addresses are never called' });
    const profile = await hostFor({ directory_url: pebble.directoryUrl, profile: 'shortlived' }).call('validateConfig', {}) as any;
    expect(profile.reason).toMatch(/does not offer the ACME profile "shortlived"/);
  });

  it('bad directory URL: issue fails (retryable) without throwing, and nothing is kept', async () => {
    const before = kv.size;
    const out = (await hostFor({ directory_url: 'https://127.0.0.1:1/dir' }).call('issue', issueRequest('mc-x', csrFor(['x.certctl.test']), ['x.certctl.test']))) as any;
    expect(out).toMatchObject({ status: 'failed', retryable: true });
    expect(out.reason).toBe('acme: connecting to 127.0.0.1:1 failed: ECONNREFUSED');
    expect(kv.size).toBe(before);
  });

  it('a URL on another host than the directory\'s is refused before any connection', async () => {
    // Asked as localhost, Pebble names localhost URLs, but the shim's renewalInfo stays on 127.0.0.1.
    const host = hostFor({ directory_url: `https://localhost:${new URL(pebble.ariDirectoryUrl).port}/dir` });
    expect(await host.call('validateConfig', {})).toEqual({ ok: true });
    const lookups = pebble.ari.lookups.length;
    await expect(host.call('renewalInfo', { certificatePem: first.certificatePem })).rejects.toThrow(/refusing request to 127\.0\.0\.1:\d+: only the directory's host localhost/);
    expect(pebble.ari.lookups.length).toBe(lookups);
  });

  it('the CA refusing the order (a name it will not issue for) fails for good with the CA\'s problem, not thrown', async () => {
    const bad = ['bad_name.certctl.test'];
    const out = (await hostFor({ directory_url: pebble.directoryUrl }).call('issue', issueRequest('mc-bad', csrFor(bad), bad))) as any;
    // Pebble answers `malformed` for the name: not worth retrying, and the CA's words reach the operator.
    expect(out).toMatchObject({ status: 'failed', retryable: false });
    expect(out.reason).toMatch(/illegal character.*\(malformed\)/);
  });

  it('a damaged or tampered CSR is denied before anything is ordered', async () => {
    const host = hostFor({ directory_url: pebble.directoryUrl });
    const orders = pebble.ari.orders.length;
    const csr = csrFor(['t.certctl.test']);
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5] ^= 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(await host.call('issue', issueRequest('mc-t', tampered, ['t.certctl.test']))).toMatchObject({ status: 'denied' });
    expect(await host.call('issue', issueRequest('mc-t', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', ['t.certctl.test']))).toMatchObject({ status: 'denied' });
    expect(pebble.ari.orders.length).toBe(orders);
  });

  it('checkOrder with an unknown order id fails (place a new one) instead of throwing', async () => {
    expect(await hostFor({ directory_url: pebble.directoryUrl }).call('checkOrder', { orderId: 'nope', certificateId: 'mc-x' })).toMatchObject({ status: 'failed', retryable: true });
  });

  it('answers pending while the CA is still validating, and checkOrder finishes the order later', async () => {
    let release!: () => void;
    gate = new Promise((r) => { release = r; });
    const n = ['slow.certctl.test'];
    const csrPem = csrFor(n);
    // A 6 s call leaves the plugin about 3 s to wait for the CA before it answers pending.
    const first = (await hostFor({ directory_url: pebble.directoryUrl }, {}, 6000).call('issue', issueRequest('mc-slow', csrPem, n))) as any;
    expect(first).toMatchObject({ status: 'pending', retryAfterSeconds: 5 });
    expect(kv.has(`order:iss-pebble:${first.orderId}`)).toBe(true);
    expect([...kv.keys()].some((k) => k.startsWith('http01:'))).toBe(true);
    release();
    let out: any = first;
    for (let i = 0; i < 5 && out.status === 'pending'; i++) {
      out = await hostFor({ directory_url: pebble.directoryUrl }).call('checkOrder', { orderId: first.orderId, certificateId: 'mc-slow' });
    }
    expect(out.status, JSON.stringify(out)).toBe('issued');
    expect(certificateMatchesCsr(out.certificatePem, csrPem)).toBe(true);
    expect(kv.has(`order:iss-pebble:${first.orderId}`)).toBe(false);
    expect([...kv.keys()].some((k) => k.startsWith('http01:'))).toBe(false);
  });

  it('dns-01 through the DNS webhook: a wildcard certificate, TXT records published in challtestsrv and removed', async () => {
    const hook: { action: string; fqdn: string }[] = [];
    const host = createTestHost({
      plugin, pluginId: 'acme', instanceId: 'iss-dns', kv, grants: { kv: true, http: { hosts: ['dns-hook.certctl.test'] } }, secrets: { dns_webhook_token: 'hook-token-1' },
      config: { email: 'pki@certctl.test', ca_certificates_pem: pebble.tlsCaPem, directory_url: pebble.directoryUrl, challenge_type: 'dns-01', dns_webhook_url: 'https://dns-hook.certctl.test/acme' },
      // The operator's DNS webhook (lego httpreq convention), here backed by challtestsrv's DNS.
      http: async (req) => {
        if (req.headers.authorization !== 'Bearer hook-token-1') return { status: 401 };
        const body = JSON.parse(req.body ?? '{}') as { fqdn: string; value: string };
        const action = new URL(req.url).pathname.split('/').pop()!;
        hook.push({ action, fqdn: body.fqdn });
        const res = await fetch(`${pebble.challengeServerUrl}/${action === 'present' ? 'set-txt' : 'clear-txt'}`, { method: 'POST', body: JSON.stringify({ host: body.fqdn, value: body.value }) });
        return { status: res.status };
      },
    });
    const n = ['wild.certctl.test', '*.wild.certctl.test'];
    const out = (await host.call('issue', issueRequest('mc-wild', csrFor(n), n))) as any;
    expect(out.status, JSON.stringify(out)).toBe('issued');
    expect(new crypto.X509Certificate(out.certificatePem).subjectAltName).toContain('DNS:*.wild.certctl.test');
    expect(hook.filter((h) => h.action === 'present').map((h) => h.fqdn)).toEqual(['_acme-challenge.wild.certctl.test.', '_acme-challenge.wild.certctl.test.']);
    expect(hook.filter((h) => h.action === 'cleanup').length).toBe(2);
  });

  it('dns-01 without a webhook URL fails for good and validateConfig says why', async () => {
    const cfg = { directory_url: pebble.directoryUrl, challenge_type: 'dns-01' };
    expect(await hostFor(cfg).call('validateConfig', {})).toEqual({ ok: false, reason: 'dns-01 needs dns_webhook_url' });
    const n = ['nohook.certctl.test'];
    const out = (await hostFor(cfg).call('issue', issueRequest('mc-nohook', csrFor(n), n))) as any;
    expect(out).toMatchObject({ status: 'failed', retryable: false });
    expect(out.reason).toMatch(/dns_webhook_url/);
  });
});

describe('ACME issuer plugin against a Pebble that requires external account binding', () => {
  let pebble: Pebble;
  const kv = new Map<string, Json>();
  const hmac = crypto.randomBytes(32).toString('base64url');
  const hostFor = (config: Record<string, Json>, secrets: Record<string, string> = {}) => createTestHost({
    plugin, pluginId: 'acme', instanceId: 'iss-eab', kv, features: ['renew', 'revoke'], grants: { kv: true }, secrets,
    config: { email: 'pki@certctl.test', ca_certificates_pem: pebble.tlsCaPem, directory_url: pebble.directoryUrl, ...config },
  });
  beforeAll(async () => {
    pebble = await startPebble({ keyAuthorization: (token) => kv.get(`http01:${token}`) as string | undefined, eab: { 'kid-certctl': hmac } });
  });
  afterAll(async () => {
    await pebble?.stop();
  });
  const n = ['eab.certctl.test'];

  it('without EAB: validateConfig and issue say the CA requires it; no account is made', async () => {
    expect(await hostFor({}).call('validateConfig', {})).toEqual({ ok: false, reason: 'the CA requires external account binding: set eab_kid and eab_hmac_key' });
    expect(await hostFor({}).call('issue', issueRequest('mc-eab', csrFor(n), n))).toMatchObject({ status: 'failed', retryable: false });
    expect(kv.has('account:iss-eab')).toBe(false);
  });

  it('with a wrong HMAC key the CA refuses the account (not retryable)', async () => {
    const out = (await hostFor({ eab_kid: 'kid-certctl' }, { eab_hmac_key: crypto.randomBytes(32).toString('base64url') }).call('issue', issueRequest('mc-eab', csrFor(n), n))) as any;
    expect(out, JSON.stringify(out)).toMatchObject({ status: 'failed', retryable: false });
    expect(out.reason).toMatch(/\(unauthorized\)|\(malformed\)/);
    expect(kv.has('account:iss-eab')).toBe(false);
  });

  it('with the CA\'s kid and HMAC key the account binds and the certificate is issued', async () => {
    const out = (await hostFor({ eab_kid: 'kid-certctl' }, { eab_hmac_key: hmac }).call('issue', issueRequest('mc-eab', csrFor(n), n))) as any;
    expect(out.status, JSON.stringify(out)).toBe('issued');
    expect(kv.get('account:iss-eab')).toMatchObject({ url: expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+\//) });
  });
});
