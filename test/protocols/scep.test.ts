import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../lifecycle/issuance-support.js';
import { openssl, opensslVerifies, scratch, x509Text } from '../ca/ca-support.js';
import type { Json } from '@certctl/sdk';
import { KernelCapabilityBroker } from '../../kernel/src/plugins/broker/capability-broker.js';
import { PluginCallError, type BrokerCallContext } from '../../kernel/src/plugins/host/contracts.js';
import { ProtocolIssuanceOps } from '../../kernel/src/protocols/issuance-ops.js';
import { capturingLogger } from '../plugins/support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { certRepFields, scepclient, requestFields, signedPkiMessage, startRecorder } from './scep-support.js';

/*
 * The SCEP server plugin (plugins/protocols/scep) in a real kernel, driven by the
 * real micromdm scepclient and checked with openssl: GetCACaps, GetCACert (RA +
 * CA), enrolment with the challenge password (RSA and ECDSA CAs), renewal signed
 * by the issued certificate, approvals (PENDING, then collected), and refusals:
 * a wrong or replayed challenge, a replayed message, damaged or truncated CMS,
 * garbage and oversized bodies (never a 500).
 */
const CHALLENGE = 'scep-shared-challenge';
const ECDSA_CHALLENGE = 'ecdsa-label-challenge';
const PKI_MESSAGE = 'application/x-pki-message';

describe.skipIf(POSTGRES_UNAVAILABLE)('SCEP server (RFC 8894)', () => {
  let t: TestKernel;
  let knex: Knex;
  let tlsCa: string;
  let rsaRoot: string;
  let recorder: Awaited<ReturnType<typeof startRecorder>>;
  const tmp = scratch();
  const dir = (name: string) => path.join(tmp.dir, name);
  const scepCerts = async () => Number(((await knex('managed_certificates').whereRaw("tags->>'protocol' = 'scep'").count({ n: '*' }).first()) as { n: string | number }).n);
  const get = (p: string) => t.api.request('GET', p, { key: null });
  const post = (p: string, body: Buffer, type = PKI_MESSAGE) => t.api.request('POST', p, { key: null, rawBody: body, headers: { 'content-type': type } });
  const client = (name: string, opts: Partial<Parameters<typeof scepclient>[1]> = {}) =>
    scepclient(dir(name), { url: `${t.kernel.url}/scep`, tlsCa, cn: `${name}.scep.test`, challenge: CHALLENGE, ...opts });
  const certsOfP7 = (der: Buffer) => openssl(['pkcs7', '-inform', 'DER', '-print_certs'], { input: der as unknown as string }).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
  const rootOf = async (label = '') => {
    const res = await get(`/scep${label}?operation=GetCACert`);
    return certsOfP7(res.raw).at(-1)!;
  };
  /** SHA-256 of the RA certificate: scepclient encrypts to every certificate GetCACert lists unless told which (an ECDSA CA cannot be a key-transport recipient). */
  const raFingerprint = async (label: string) => {
    const [ra] = certsOfP7((await get(`/scep${label}?operation=GetCACert`)).raw);
    return crypto.createHash('sha256').update(new crypto.X509Certificate(ra).raw).digest('hex');
  };

  beforeAll(async () => {
    t = await startTestKernel();
    knex = t.kernel.db.knex;
    tlsCa = path.join(t.dataDir, 'tls', 'server.crt');
    expect((await t.api.post('/api/v1/issuers', { id: 'iss-scep-rsa', name: 'SCEP RSA CA', type: 'local-ca', config: { key_algorithm: 'RSA-2048', subject: 'CN=SCEP RSA Root' } })).status).toBe(201);
    expect((await t.api.post('/api/v1/issuers', { id: 'iss-scep-ec', name: 'SCEP ECDSA CA', type: 'local-ca', config: { subject: 'CN=SCEP EC Root' } })).status).toBe(201);
    await knex('certificate_profiles').insert([
      { id: 'prof-scep-gated', name: 'SCEP with approval', requires_approval: true },
      { id: 'prof-scep-strict', name: 'SCEP RSA-4096 only', allowed_key_algorithms: JSON.stringify([{ algorithm: 'RSA', min_size: 4096 }]) },
    ]);
    const res = await t.api.post('/api/v1/protocol-endpoints', {
      name: 'SCEP', type: 'scep',
      config: {
        issuer_id: 'iss-scep-rsa', challenge_password: CHALLENGE,
        labels: { ecdsa: { issuer_id: 'iss-scep-ec' }, gated: { profile_id: 'prof-scep-gated' }, strict: { profile_id: 'prof-scep-strict' }, norenew: { allow_renewal: false } },
        label_challenge_passwords: { ecdsa: ECDSA_CHALLENGE },
      },
    });
    expect(res.status, res.text).toBe(201);
    expect(JSON.stringify(res.body)).not.toContain(CHALLENGE);
    recorder = await startRecorder(t.kernel.url, tlsCa);
  }, 120_000);
  afterAll(async () => {
    await recorder?.close();
    await t?.stop();
    tmp.cleanup();
  });

  it('GetCACaps: plaintext capabilities, one per line', async () => {
    const res = await get('/scep?operation=GetCACaps');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const caps = res.text.trim().split('\n');
    expect(caps).toEqual(expect.arrayContaining(['POSTPKIOperation', 'Renewal', 'SHA-256', 'AES', 'SCEPStandard']));
    expect(caps).not.toContain('GetNextCACert');
    // An endpoint that refuses renewals does not offer them.
    const norenew = (await get('/scep/norenew?operation=GetCACaps')).text.trim().split('\n');
    expect(norenew).toContain('SCEPStandard');
    expect(norenew).not.toContain('Renewal');
  });

  it('GetCACert: the RA certificate (RSA, keyEncipherment, id-kp-cmcRA) and the CA, as certs-only PKCS#7; the RA key is sealed at rest', async () => {
    const res = await get('/scep?operation=GetCACert');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-x509-ca-ra-cert');
    const [ra, root] = certsOfP7(res.raw);
    expect(certsOfP7(res.raw)).toHaveLength(2);
    rsaRoot = root;
    const text = x509Text(ra);
    expect(text).toMatch(/Public Key Algorithm: rsaEncryption/);
    expect(text).toMatch(/Digital Signature, Key Encipherment/);
    expect(text).toMatch(/1\.3\.6\.1\.5\.5\.7\.3\.28|CMC Registration Authority/);
    expect(x509Text(root)).toMatch(/Subject: CN\s*=\s*SCEP RSA Root/);
    expect(opensslVerifies(tmp.dir, root, ra).ok).toBe(true);
    // The same RA is served again; its key is stored only sealed.
    expect(certsOfP7((await get('/scep?operation=GetCACert')).raw)[0]).toBe(ra);
    const rows = (await knex('protocol_ra_keys').where({ issuer_id: 'iss-scep-rsa' })) as Array<{ encrypted_key: string }>;
    expect(rows).toHaveLength(1);
    expect(rows[0].encrypted_key).toMatch(/^v1:/);
    // Opened with the kernel's config cipher it is the RA certificate's key; stored, it is only ciphertext.
    const opened = t.kernel.cipher.decrypt(rows[0].encrypted_key);
    expect(rows[0].encrypted_key).not.toContain(opened.slice(0, 40));
    const key = crypto.createPrivateKey({ key: Buffer.from(opened, 'base64'), format: 'der', type: 'pkcs8' });
    expect(crypto.createPublicKey(key).export({ format: 'pem', type: 'spki' })).toBe(new crypto.X509Certificate(ra).publicKey.export({ format: 'pem', type: 'spki' }));
  });

  it('scepclient enrols with the challenge password; the certificate is for its key and verifies against the CA', async () => {
    const run = await client('device-1');
    expect(run.code, run.output).toBe(0);
    const leaf = fs.readFileSync(path.join(dir('device-1'), 'client.pem'), 'utf8');
    expect(opensslVerifies(tmp.dir, rsaRoot, leaf).ok).toBe(true);
    expect(openssl(['x509', '-noout', '-pubkey'], { input: leaf })).toBe(openssl(['pkey', '-in', path.join(dir('device-1'), 'key.pem'), '-pubout']));
    expect(x509Text(leaf)).toMatch(/Subject: .*CN\s*=\s*device-1\.scep\.test/);
    const row = (await knex('managed_certificates').whereRaw("tags->>'protocol' = 'scep'").where({ common_name: 'device-1.scep.test' }).first()) as Record<string, any>;
    expect(row).toMatchObject({ status: 'Active', issuer_id: 'iss-scep-rsa' });
    const audit = await knex('audit_events').where({ resource_id: row.id, action: 'certificate_created' }).first('actor', 'actor_type');
    expect(audit).toEqual({ actor: 'scep/scep-challenge:device-1.scep.test', actor_type: 'protocol' });
  }, 60_000);

  it('a wrong or missing challenge password is refused with FAILURE badRequest, audited without the secret, and nothing is enrolled', async () => {
    const before = await scepCerts();
    const wrong = await client('intruder', { challenge: 'not-the-challenge' });
    expect(wrong.code).not.toBe(0);
    expect(wrong.output).toMatch(/failInfo: 2|badRequest/);
    const none = await client('intruder-2', { challenge: undefined });
    expect(none.code).not.toBe(0);
    expect(none.output).toMatch(/failInfo: 2|badRequest/);
    // The ECDSA label has its own challenge: the default one does not open it.
    const otherLabel = await client('intruder-3', { url: `${t.kernel.url}/scep/ecdsa`, caFingerprint: await raFingerprint('/ecdsa') });
    expect(otherLabel.code).not.toBe(0);
    expect(otherLabel.output).toMatch(/failInfo: 2|badRequest/);
    expect(await scepCerts()).toBe(before);
    const events = (await knex('audit_events').where({ action: 'plugin_event' }).select('details')) as Array<{ details: unknown }>;
    const refused = events.map((e) => JSON.stringify(e.details)).filter((d) => d.includes('scep.challenge_refused'));
    expect(refused.length).toBeGreaterThanOrEqual(3);
    for (const d of refused) {
      expect(d).not.toContain('not-the-challenge');
      expect(d).not.toContain(CHALLENGE);
    }
  }, 90_000);

  it('replays are refused: the same challenge for the same key again, and a recorded message sent again', async () => {
    const first = await client('replayer', { url: `${recorder.url}/scep` });
    expect(first.code, first.output).toBe(0);
    const recorded = recorder.messages.at(-1)!;
    expect(certRepFields(recorded.response)).toMatchObject({ pkiStatus: '0', messageType: '3', recipientNonce: requestFields(recorded.request).senderNonce });
    expect(requestFields(recorded.request).messageType).toBe('19');
    const before = await scepCerts();

    // The exact message again: a CertRep FAILURE badRequest, no second certificate.
    const again = await post('/scep?operation=PKIOperation', recorded.request);
    expect(again.status).toBe(200);
    expect(again.headers['content-type']).toBe(PKI_MESSAGE);
    expect(certRepFields(again.raw)).toMatchObject({ pkiStatus: '2', failInfo: '2', hasContent: false });

    // A fresh message (new nonce) for the same key with the same challenge: refused too.
    fs.rmSync(path.join(dir('replayer'), 'client.pem'));
    const rerun = await client('replayer');
    expect(rerun.code).not.toBe(0);
    expect(rerun.output).toMatch(/failInfo: 2|badRequest/);
    expect(await scepCerts()).toBe(before);
    const events = (await knex('audit_events').where({ action: 'plugin_event' }).select('details')) as Array<{ details: unknown }>;
    expect(events.filter((e) => JSON.stringify(e.details).includes('scep.replay_refused')).length).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it('a request the kernel refuses (profile) is FAILURE badRequest and does not use up the challenge: the same key may try again', async () => {
    const replays = async () => ((await knex('audit_events').where({ action: 'plugin_event' }).select('details')) as Array<{ details: unknown }>).filter((e) => JSON.stringify(e.details).includes('scep.replay_refused')).length;
    const before = await replays();
    for (let i = 0; i < 2; i++) {
      const run = await client('weak-key', { url: `${t.kernel.url}/scep/strict` });
      expect(run.code).not.toBe(0);
      expect(run.output).toMatch(/failInfo: 2|badRequest/);
    }
    expect(await replays()).toBe(before);
    // The kernel audits each refusal, and leaves no managed certificate behind.
    expect(await knex('managed_certificates').where({ common_name: 'weak-key.scep.test' })).toEqual([]);
    const refused = (await knex('audit_events').where({ action: 'certificate_enrolment_refused', actor: 'scep/scep-challenge:weak-key.scep.test' }).select('details')) as Array<{ details: unknown }>;
    expect(refused).toHaveLength(2);
    expect(JSON.stringify(refused[0].details)).toMatch(/breaks the rules/);
  }, 60_000);

  it('renewal: scepclient holding its certificate sends a RenewalReq signed by it and gets a new certificate for the same managed certificate', async () => {
    const first = await client('renewer');
    expect(first.code, first.output).toBe(0);
    const certFile = path.join(dir('renewer'), 'client.pem');
    const oldLeaf = fs.readFileSync(certFile, 'utf8');
    const row = (await knex('managed_certificates').where({ common_name: 'renewer.scep.test' }).first('id')) as { id: string };

    const renewed = await client('renewer', { challenge: undefined, url: `${recorder.url}/scep` });
    expect(renewed.code, renewed.output).toBe(0);
    expect(requestFields(recorder.messages.at(-1)!.request).messageType).toBe('17');
    const newLeaf = fs.readFileSync(certFile, 'utf8');
    expect(newLeaf).not.toBe(oldLeaf);
    expect(opensslVerifies(tmp.dir, rsaRoot, newLeaf).ok).toBe(true);
    expect(Number(((await knex('managed_certificates').where({ common_name: 'renewer.scep.test' }).count({ n: '*' }).first()) as { n: string }).n)).toBe(1);
    expect(Number(((await knex('certificate_versions').where({ certificate_id: row.id }).count({ n: '*' }).first()) as { n: string }).n)).toBe(2);
    const audit = await knex('audit_events').where({ resource_id: row.id }).whereRaw("actor like 'scep/scep-certificate:%'").first('actor');
    expect(audit).toEqual({ actor: 'scep/scep-certificate:renewer.scep.test' });

    // The same renewal message again is a replay.
    const again = await post('/scep?operation=PKIOperation', recorder.messages.at(-1)!.request);
    expect(certRepFields(again.raw)).toMatchObject({ pkiStatus: '2', failInfo: '2' });
  }, 90_000);

  it('renewal with a certificate this server did not issue, or on an endpoint without renewal, is refused', async () => {
    // A client holding a certificate from elsewhere (self-made) sends a RenewalReq.
    const d = dir('stranger');
    fs.mkdirSync(d, { recursive: true });
    openssl(['genrsa', '-traditional', '-out', path.join(d, 'key.pem'), '2048']);
    openssl(['req', '-x509', '-key', path.join(d, 'key.pem'), '-out', path.join(d, 'client.pem'), '-subj', '/CN=stranger', '-days', '2']);
    const run = await client('stranger', { challenge: undefined });
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/failInfo: 4|badCertID/i);

    // A certificate this server issued but that was revoked since (key compromise) cannot renew itself.
    const revoked = await client('revoked-renewer');
    expect(revoked.code, revoked.output).toBe(0);
    const row = (await knex('managed_certificates').where({ common_name: 'revoked-renewer.scep.test' }).first('id')) as { id: string };
    expect((await t.api.post(`/api/v1/certificates/${row.id}/revoke`, { reason: 'keyCompromise' })).status).toBeLessThan(300);
    const versions = async () => Number(((await knex('certificate_versions').where({ certificate_id: row.id }).count({ n: '*' }).first()) as { n: string }).n);
    const renewAttempt = await client('revoked-renewer', { challenge: undefined });
    expect(renewAttempt.code).not.toBe(0);
    expect(renewAttempt.output).toMatch(/failInfo: 4|badCertID/i);
    expect(await versions()).toBe(1);

    const first = await client('no-renew', { url: `${t.kernel.url}/scep/norenew` });
    expect(first.code, first.output).toBe(0);
    const again = await client('no-renew', { url: `${t.kernel.url}/scep/norenew`, challenge: undefined });
    expect(again.code).not.toBe(0);
    expect(again.output).toMatch(/failInfo: 2|badRequest/);
  }, 90_000);

  it('an ECDSA CA: the RA stays RSA; scepclient picks it by fingerprint and enrols with the label\'s challenge', async () => {
    const res = await get('/scep/ecdsa?operation=GetCACert');
    const [ra, root] = certsOfP7(res.raw);
    expect(x509Text(root)).toMatch(/id-ecPublicKey/);
    expect(x509Text(ra)).toMatch(/rsaEncryption/);
    const run = await client('ec-device', { url: `${t.kernel.url}/scep/ecdsa`, challenge: ECDSA_CHALLENGE, caFingerprint: await raFingerprint('/ecdsa') });
    expect(run.code, run.output).toBe(0);
    const leaf = fs.readFileSync(path.join(dir('ec-device'), 'client.pem'), 'utf8');
    expect(opensslVerifies(tmp.dir, await rootOf('/ecdsa'), leaf).ok).toBe(true);
    expect((await knex('managed_certificates').where({ common_name: 'ec-device.scep.test' }).first('issuer_id'))?.issuer_id).toBe('iss-scep-ec');
  }, 60_000);

  it('approval: PENDING until approved, then the same client collects its certificate by sending its request again', async () => {
    const url = `${recorder.url}/scep/gated`;
    const held = await client('badge', { url, until: /pkiStatus=PENDING/ });
    expect(held.output).toMatch(/pkiStatus=PENDING/);
    const pendingMsg = recorder.messages.at(-1)!;
    expect(certRepFields(pendingMsg.response)).toMatchObject({ pkiStatus: '3', hasContent: false });
    // Sent again while pending: still PENDING (a poll, not a replay).
    expect(certRepFields((await post('/scep/gated?operation=PKIOperation', pendingMsg.request)).raw).pkiStatus).toBe('3');

    const cert = (await knex('managed_certificates').where({ common_name: 'badge.scep.test' }).first('id', 'status')) as { id: string; status: string };
    expect(cert.status).toBe('Pending');
    const job = (await knex('jobs').where({ certificate_id: cert.id, status: 'AwaitingApproval' }).first('id')) as { id: string };
    expect((await t.api.post(`/api/v1/jobs/${job.id}/approve`, { reason: 'known badge' })).status).toBe(200);
    expect(await runJob(t, job.id)).toMatchObject({ status: 'Completed' });

    const collected = await client('badge', { url });
    expect(collected.code, collected.output).toBe(0);
    const leaf = fs.readFileSync(path.join(dir('badge'), 'client.pem'), 'utf8');
    expect(opensslVerifies(tmp.dir, rsaRoot, leaf).ok).toBe(true);
    expect(Number(((await knex('managed_certificates').where({ common_name: 'badge.scep.test' }).count({ n: '*' }).first()) as { n: string }).n)).toBe(1);
  }, 90_000);

  it('CertPoll (GetCertInitial) collects an approved request; openssl verifies the RA-signed CertRep and opens the certificate with the client key', async () => {
    const url = `${recorder.url}/scep/gated`;
    const held = await client('badge-poll', { url, until: /pkiStatus=PENDING/ });
    expect(held.output).toMatch(/pkiStatus=PENDING/);
    const { transactionId } = certRepFields(recorder.messages.at(-1)!.response);
    const d = dir('badge-poll');
    const [certPem, keyPem] = [fs.readFileSync(path.join(d, 'self.pem'), 'utf8'), fs.readFileSync(path.join(d, 'key.pem'), 'utf8')];
    const raPem = certsOfP7((await get('/scep/gated?operation=GetCACert')).raw)[0];
    fs.writeFileSync(path.join(d, 'ra.pem'), raPem);
    // The poll's content is an IssuerAndSubject enveloped for the RA; the server identifies the request by transactionID and key.
    const envelope = Buffer.from(execFileSync('openssl', ['cms', '-encrypt', '-aes256', '-binary', '-outform', 'DER', path.join(d, 'ra.pem')], { input: 'issuer-and-subject' }));
    const poll = () => signedPkiMessage({ certPem, keyPem, messageType: 20, transactionId, content: envelope });

    expect(certRepFields((await post('/scep/gated?operation=PKIOperation', await poll())).raw)).toMatchObject({ pkiStatus: '3', transactionId });
    // Another key polling the same transaction learns nothing.
    const stranger = path.join(d, 'stranger.key');
    openssl(['genrsa', '-out', stranger, '2048']);
    const strangerCert = openssl(['req', '-x509', '-key', stranger, '-subj', '/CN=stranger', '-days', '1']);
    const foreign = await signedPkiMessage({ certPem: strangerCert, keyPem: fs.readFileSync(stranger, 'utf8'), messageType: 20, transactionId, content: envelope });
    expect(certRepFields((await post('/scep/gated?operation=PKIOperation', foreign)).raw)).toMatchObject({ pkiStatus: '2', failInfo: '4' });

    const cert = (await knex('managed_certificates').where({ common_name: 'badge-poll.scep.test' }).first('id')) as { id: string };
    const job = (await knex('jobs').where({ certificate_id: cert.id, status: 'AwaitingApproval' }).first('id')) as { id: string };
    expect((await t.api.post(`/api/v1/jobs/${job.id}/approve`, { reason: 'known badge' })).status).toBe(200);
    expect(await runJob(t, job.id)).toMatchObject({ status: 'Completed' });

    const res = await post('/scep/gated?operation=PKIOperation', await poll());
    expect(certRepFields(res.raw)).toMatchObject({ pkiStatus: '0', messageType: '3', transactionId, hasContent: true });
    fs.writeFileSync(path.join(d, 'rep.der'), res.raw);
    const root = await rootOf();
    fs.writeFileSync(path.join(d, 'root.pem'), root);
    openssl(['cms', '-verify', '-inform', 'DER', '-in', 'rep.der', '-CAfile', 'root.pem', '-purpose', 'any', '-binary', '-out', 'inner.der'], { cwd: d });
    // The reply uses the content cipher of scepclient's request: single DES (its default), which OpenSSL 3 keeps in its legacy provider.
    expect(openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'inner.der'], { cwd: d })).toMatch(/algorithm: des-cbc/i);
    openssl(['cms', '-decrypt', '-inform', 'DER', '-in', 'inner.der', '-inkey', 'key.pem', '-binary', '-provider', 'legacy', '-provider', 'default', '-out', 'certs.der'], { cwd: d });
    const leaf = openssl(['pkcs7', '-inform', 'DER', '-in', 'certs.der', '-print_certs'], { cwd: d }).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/)![0];
    expect(opensslVerifies(tmp.dir, root, leaf).ok).toBe(true);
    expect(openssl(['x509', '-noout', '-pubkey'], { input: leaf })).toBe(openssl(['pkey', '-in', path.join(d, 'key.pem'), '-pubout']));
  }, 90_000);

  it.each([
    ['des', 'des-cbc'],
    ['des3', 'des-ede3-cbc'],
    ['aes128', 'aes-128-cbc'],
  ])('the certificate comes back encrypted with the client\'s own content cipher (%s): single DES only for a client that sent it', async (cipher, name) => {
    const d = dir(`cipher-${cipher}`);
    fs.mkdirSync(d, { recursive: true });
    const legacy = ['-provider', 'legacy', '-provider', 'default'];
    fs.writeFileSync(path.join(d, 'req.cnf'), `[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = cipher-${cipher}.scep.test\n[attrs]\nchallengePassword = ${CHALLENGE}\n`);
    openssl(['genrsa', '-out', 'key.pem', '2048'], { cwd: d });
    openssl(['req', '-new', '-key', 'key.pem', '-config', 'req.cnf', '-outform', 'DER', '-out', 'csr.der'], { cwd: d });
    const certPem = openssl(['req', '-x509', '-key', 'key.pem', '-subj', `/CN=cipher-${cipher}`, '-days', '1'], { cwd: d });
    fs.writeFileSync(path.join(d, 'ra.pem'), certsOfP7((await get('/scep?operation=GetCACert')).raw)[0]);
    const envelope = execFileSync('openssl', ['cms', '-encrypt', `-${cipher}`, '-binary', '-outform', 'DER', ...legacy, '-in', 'csr.der', 'ra.pem'], { cwd: d });
    const msg = await signedPkiMessage({ certPem, keyPem: fs.readFileSync(path.join(d, 'key.pem'), 'utf8'), messageType: 19, transactionId: `cipher-${cipher}`, content: envelope });
    const res = await post('/scep?operation=PKIOperation', msg);
    expect(certRepFields(res.raw), res.text).toMatchObject({ pkiStatus: '0', hasContent: true });
    fs.writeFileSync(path.join(d, 'rep.der'), res.raw);
    const root = await rootOf();
    fs.writeFileSync(path.join(d, 'root.pem'), root);
    openssl(['cms', '-verify', '-inform', 'DER', '-in', 'rep.der', '-CAfile', 'root.pem', '-purpose', 'any', '-binary', '-out', 'inner.der'], { cwd: d });
    expect(openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'inner.der'], { cwd: d })).toMatch(new RegExp(`algorithm: ${name}`, 'i'));
    openssl(['cms', '-decrypt', '-inform', 'DER', '-in', 'inner.der', '-inkey', 'key.pem', '-binary', ...legacy, '-out', 'certs.der'], { cwd: d });
    const leaf = openssl(['pkcs7', '-inform', 'DER', '-in', 'certs.der', '-print_certs'], { cwd: d }).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/)![0];
    expect(opensslVerifies(tmp.dir, root, leaf).ok).toBe(true);
  }, 30_000);

  it('malformed requests get SCEP errors, never a 500: garbage, truncated and damaged CMS, oversized bodies, wrong operations and methods', async () => {
    const before = await scepCerts();
    const good = recorder.messages.find((m) => certRepFields(m.response).pkiStatus === '0')!.request;
    const statuses: number[] = [];
    const expectStatus = async (res: Promise<{ status: number; text: string }>, status: number) => {
      const r = await res;
      statuses.push(r.status);
      expect(r.status, r.text).toBe(status);
      return r;
    };
    await expectStatus(post('/scep?operation=PKIOperation', Buffer.from('this is not CMS')), 400);
    await expectStatus(post('/scep?operation=PKIOperation', Buffer.from([0x30, 0x82, 0xff, 0xff, 0x00])), 400);
    await expectStatus(post('/scep?operation=PKIOperation', good.subarray(0, Math.floor(good.length / 2))), 400);
    await expectStatus(post('/scep?operation=PKIOperation', good.subarray(0, good.length - 1)), 400);
    await expectStatus(post('/scep?operation=PKIOperation', Buffer.alloc(0)), 400);
    await expectStatus(post('/scep?operation=PKIOperation', crypto.randomBytes(70_000)), 413);
    await expectStatus(get(`/scep?operation=PKIOperation&message=${encodeURIComponent('%%%not base64')}`), 400);
    await expectStatus(get(`/scep?operation=PKIOperation&message=${encodeURIComponent(good.subarray(0, 300).toString('base64'))}`), 400);
    await expectStatus(get('/scep?operation=GetSomething'), 400);
    await expectStatus(get('/scep'), 400);
    await expectStatus(post('/scep?operation=GetCACert', Buffer.from('x')), 405);
    await expectStatus(t.api.request('PUT', '/scep?operation=PKIOperation', { key: null, rawBody: good, headers: { 'content-type': PKI_MESSAGE } }), 405);
    await expectStatus(get('/scep/no-such-label?operation=GetCACaps'), 404);

    // A damaged signature: the message parses, so the answer is a signed CertRep FAILURE badMessageCheck.
    const damaged = Buffer.from(good);
    damaged[damaged.length - 10] ^= 0xff;
    const bad = await expectStatus(post('/scep?operation=PKIOperation', damaged), 200);
    expect(certRepFields((bad as unknown as { raw: Buffer }).raw)).toMatchObject({ pkiStatus: '2', failInfo: '1' });

    // The same message in a GET (base64 `message`) is answered like the POST (a replay here).
    const viaGet = await get(`/scep?operation=PKIOperation&message=${encodeURIComponent(good.toString('base64'))}`);
    expect(viaGet.status).toBe(200);
    expect(certRepFields(viaGet.raw).pkiStatus).toBe('2');
    expect(statuses.every((s) => s < 500)).toBe(true);
    expect(await scepCerts()).toBe(before);
  }, 60_000);

  it('ctx.issuance.ra* through the broker: protocol plugins only, checked requests, and an RA replaced before it expires still decrypts', async () => {
    const broker = new KernelCapabilityBroker({ knex, cipher: t.kernel.cipher, audit: t.kernel.audit, log: capturingLogger().log, issuance: new ProtocolIssuanceOps(() => t.kernel) });
    const ctxFor = (pluginId: string): BrokerCallContext => ({ pluginId, instanceId: null, grants: { issuance: true }, deadline: Date.now() + 30_000 });
    const call = (op: 'issuance.raCertificate' | 'issuance.raDecrypt' | 'issuance.raSign', request: object, pluginId = 'scep') =>
      broker.handle(ctxFor(pluginId), { op, request: request as Json }) as Promise<Record<string, any>>;

    await expect(call('issuance.raCertificate', { issuerId: 'iss-scep-ec' }, 'local-ca')).rejects.toThrow(/only protocol plugins/);
    await expect(call('issuance.raCertificate', { issuerId: '../etc' })).rejects.toBeInstanceOf(PluginCallError);
    // The RA signs SCEP CertReps only: no attributes of the caller's choosing, no request types, no arbitrary content.
    const certRep = { type: '2.16.840.1.113733.1.9.2', valuesBase64: ['EwEz'] };
    await expect(call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [certRep, { type: '1.2.840.113549.1.9.4', valuesBase64: ['BAA='] }] })).rejects.toThrow(/not a SCEP attribute/);
    await expect(call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [certRep, { type: '1.3.6.1.5.5.7.12.2', valuesBase64: ['BAA='] }] })).rejects.toThrow(/not a SCEP attribute/);
    await expect(call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [{ type: '2.16.840.1.113733.1.9.2', valuesBase64: ['EwIxOQ=='] }] })).rejects.toThrow(/only CertRep/);
    await expect(call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [] })).rejects.toThrow(/only CertRep/);
    await expect(call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [certRep, certRep] })).rejects.toThrow(/twice/);
    await expect(call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [certRep], contentBase64: '***' })).rejects.toThrow(/contentBase64/);
    await expect(call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [certRep], contentBase64: Buffer.from('a document to vouch for').toString('base64') })).rejects.toThrow(/EnvelopedData/);
    expect((await call('issuance.raSign', { issuerId: 'iss-scep-ec', signedAttributes: [certRep] })).signedDataBase64).toEqual(expect.any(String));
    expect(await call('issuance.raDecrypt', { issuerId: 'iss-scep-ec', envelopedDataBase64: Buffer.from('garbage').toString('base64') })).toMatchObject({ ok: false, code: 'bad_message' });

    const old = await call('issuance.raCertificate', { issuerId: 'iss-scep-ec' });
    const oldFile = path.join(tmp.dir, 'old-ra.pem');
    fs.writeFileSync(oldFile, old.certificatePem);
    const forOld = execFileSync('openssl', ['cms', '-encrypt', '-binary', '-aes256', '-outform', 'DER', oldFile], { input: 'for the old RA' });
    // 10 days left: a new RA is made (and audited); the old one keeps decrypting until it expires.
    await knex('protocol_ra_keys').where({ issuer_id: 'iss-scep-ec' }).update({ not_after: new Date(Date.now() + 10 * 86_400_000) });
    const fresh = new KernelCapabilityBroker({ knex, cipher: t.kernel.cipher, audit: t.kernel.audit, log: capturingLogger().log, issuance: new ProtocolIssuanceOps(() => t.kernel) });
    const renewed = (await fresh.handle(ctxFor('scep'), { op: 'issuance.raCertificate', request: { issuerId: 'iss-scep-ec' } })) as Record<string, any>;
    expect(renewed.certificatePem).not.toBe(old.certificatePem);
    expect(Number(((await knex('protocol_ra_keys').where({ issuer_id: 'iss-scep-ec' }).count({ n: '*' }).first()) as { n: string }).n)).toBe(2);
    expect(Number(((await knex('audit_events').where({ action: 'ra_certificate_created', resource_id: 'iss-scep-ec' }).count({ n: '*' }).first()) as { n: string }).n)).toBe(2);
    const opened = await call('issuance.raDecrypt', { issuerId: 'iss-scep-ec', envelopedDataBase64: forOld.toString('base64') });
    expect(Buffer.from(opened.contentBase64, 'base64').toString()).toBe('for the old RA');
    expect(opened.contentCipher).toBe('aes-256-cbc');

    // The current RA is the newest made, not the one that expires last: an older RA of another CA
    // (as after a CA change to one that ends sooner) lasting longer is neither served nor replaced again.
    const foreignCa = openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(tmp.dir, 'foreign-ra.key'), '-subj', '/CN=old CA RA', '-days', '3'], { cwd: tmp.dir });
    await knex('protocol_ra_keys').where({ issuer_id: 'iss-scep-ec' }).whereNot({ certificate_pem: renewed.certificatePem }).update({ certificate_pem: foreignCa, not_after: new Date(Date.now() + 5 * 365 * 86_400_000) });
    const third = new KernelCapabilityBroker({ knex, cipher: t.kernel.cipher, audit: t.kernel.audit, log: capturingLogger().log, issuance: new ProtocolIssuanceOps(() => t.kernel) });
    const current = (await third.handle(ctxFor('scep'), { op: 'issuance.raCertificate', request: { issuerId: 'iss-scep-ec' } })) as Record<string, any>;
    expect(current.certificatePem).toBe(renewed.certificatePem);
    expect(Number(((await knex('protocol_ra_keys').where({ issuer_id: 'iss-scep-ec' }).count({ n: '*' }).first()) as { n: string }).n)).toBe(2);
    const reply = (await third.handle(ctxFor('scep'), { op: 'issuance.raSign', request: { issuerId: 'iss-scep-ec', signedAttributes: [certRep] } })) as Record<string, any>;
    const [signer] = certsOfP7(Buffer.from(reply.signedDataBase64, 'base64'));
    expect(new crypto.X509Certificate(signer).fingerprint256).toBe(new crypto.X509Certificate(renewed.certificatePem).fingerprint256);

    // Each protocol plugin has its own RA: another one (EST here) cannot open what clients encrypted for the SCEP server's.
    const currentFile = path.join(tmp.dir, 'current-ra.pem');
    fs.writeFileSync(currentFile, renewed.certificatePem);
    const forScep = execFileSync('openssl', ['cms', '-encrypt', '-binary', '-aes128', '-outform', 'DER', currentFile], { input: 'challengePassword inside' });
    expect((await call('issuance.raDecrypt', { issuerId: 'iss-scep-ec', envelopedDataBase64: forScep.toString('base64') }, 'est'))).toMatchObject({ ok: false, code: 'not_for_ra' });
    expect((await call('issuance.raCertificate', { issuerId: 'iss-scep-ec' }, 'est')).certificatePem).not.toBe(renewed.certificatePem);
    expect(Buffer.from((await call('issuance.raDecrypt', { issuerId: 'iss-scep-ec', envelopedDataBase64: forScep.toString('base64') })).contentBase64, 'base64').toString()).toBe('challengePassword inside');
  }, 60_000);
});
