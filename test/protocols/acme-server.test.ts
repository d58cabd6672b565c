import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { opensslVerifies, scratch, x509Text } from '../ca/ca-support.js';
import { freePort } from '../support/free-port.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import type { TestKernel } from '../support/test-kernel.js';
import { RawAcme, startAcmeServer } from './acme-client.js';

const run = promisify(execFile);
const EAB_KEY = crypto.randomBytes(32).toString('base64url');

/** Serves key authorizations at /.well-known/acme-challenge/<token> like an ACME client would. */
async function challengeServer(port: number, answers: Map<string, string>): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const token = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '')?.[1];
    const answer = token ? answers.get(token) : undefined;
    res.writeHead(answer ? 200 : 404, { 'Content-Type': 'text/plain' }).end(answer ?? 'no');
  });
  await new Promise<void>((resolve) => srv.listen(port, '127.0.0.1', () => resolve()));
  return srv;
}

/*
 * The ACME server plugin (plugins/protocols/acme-server) in trust_authenticated
 * mode: Debian's certbot and lego obtain, renew and revoke certificates against it
 * unchanged; a hand-made client checks the protocol's errors (bad JWS, nonces,
 * media types) are ACME problem documents and never a 500.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('ACME server (RFC 8555), trust_authenticated', () => {
  let t: TestKernel;
  let knex: Knex;
  let cacert: string;
  let directory: string;
  let rootPem: string;
  let http01Port: number;
  const tmp = scratch();
  const acmeCerts = async () => (await knex('managed_certificates').whereRaw("tags->>'protocol' = 'acme-server'").select('id', 'common_name', 'status', 'serial_number')) as { id: string; common_name: string; status: string; serial_number: string }[];
  const serialOf = (pem: string) => /Serial Number:\s*\n?\s*([0-9a-f:]+)/i.exec(x509Text(pem))![1].replace(/:/g, '').toLowerCase().replace(/^0+/, '');

  beforeAll(async () => {
    http01Port = await freePort();
    const s = await startAcmeServer('iss-acme', {
      mode: 'trust_authenticated', http01_port: http01Port, eab_keys: { 'kid-1': EAB_KEY },
      profiles: { 'prof-acme-http': { mode: 'challenge', challenge_types: ['http-01'] }, 'prof-acme-eab': { external_account_required: true } },
    }, (k) => k.kernel.db.knex('certificate_profiles').insert([{ id: 'prof-acme-http', name: 'ACME with http-01' }, { id: 'prof-acme-eab', name: 'ACME with EAB' }]));
    ({ t, cacert, directory } = s);
    knex = t.kernel.db.knex;
    expect(s.endpoint.text).not.toContain(EAB_KEY);
    rootPem = s.chainPem[0];
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  const certbot = (args: string[]) => {
    const dir = path.join(tmp.dir, 'certbot');
    return run('certbot', [...args, '--non-interactive', '--config-dir', `${dir}/config`, '--work-dir', `${dir}/work`, '--logs-dir', `${dir}/logs`, '--server', directory],
      { env: { ...process.env, REQUESTS_CA_BUNDLE: cacert }, timeout: 60_000 });
  };

  it('certbot: registers, obtains a certificate, renews it and revokes it', async () => {
    await certbot(['certonly', '--standalone', '--http-01-port', '0', '--agree-tos', '--email', 'ops@acme.test', '-d', 'app.acme.test', '-d', 'www.app.acme.test', '--cert-name', 'app']);
    const live = path.join(tmp.dir, 'certbot', 'config', 'live', 'app');
    const first = fs.readFileSync(path.join(live, 'cert.pem'), 'utf8');
    expect(opensslVerifies(tmp.dir, rootPem, first).ok).toBe(true);
    expect(x509Text(first)).toMatch(/DNS:app\.acme\.test, DNS:www\.app\.acme\.test|DNS:www\.app\.acme\.test, DNS:app\.acme\.test/);
    const rows = await acmeCerts();
    expect(rows.map((r) => r.common_name)).toContain('app.acme.test');

    await certbot(['renew', '--force-renewal', '--no-random-sleep-on-renew', '--cert-name', 'app']);
    const second = fs.readFileSync(path.join(live, 'cert.pem'), 'utf8');
    expect(serialOf(second)).not.toBe(serialOf(first));
    expect(opensslVerifies(tmp.dir, rootPem, second).ok).toBe(true);

    await certbot(['revoke', '--cert-path', path.join(live, 'cert.pem'), '--reason', 'keycompromise', '--no-delete-after-revoke']);
    const revoked = (await acmeCerts()).find((r) => r.serial_number.replace(/^0+/, '') === serialOf(second));
    expect(revoked?.status).toBe('Revoked');
    const record = await knex('certificate_revocations').where({ certificate_id: revoked!.id }).first('reason');
    expect(record?.reason).toBe('keyCompromise');
  }, 150_000); // three certbot runs: its start-up alone is seconds each on a loaded machine

  it('lego: obtains, renews and revokes', async () => {
    const dir = path.join(tmp.dir, 'lego');
    const lego = (args: string[]) => run('lego', ['--accept-tos', '--email', 'ops@acme.test', '--server', directory, '--path', dir, '--domains', 'lego.acme.test', '--http', '--http.port', '127.0.0.1:0', ...args],
      { env: { ...process.env, LEGO_CA_CERTIFICATES: cacert }, timeout: 60_000 });
    await lego(['run']);
    const certFile = path.join(dir, 'certificates', 'lego.acme.test.crt');
    const first = fs.readFileSync(certFile, 'utf8');
    expect(opensslVerifies(tmp.dir, rootPem, first.split(/(?<=-----END CERTIFICATE-----\n)/)[0]).ok).toBe(true);
    await lego(['renew', '--days', '10000', '--no-random-sleep']);
    const second = fs.readFileSync(certFile, 'utf8');
    expect(serialOf(second)).not.toBe(serialOf(first));
    await lego(['revoke']);
    const revoked = (await acmeCerts()).find((r) => r.serial_number.replace(/^0+/, '') === serialOf(second));
    expect(revoked?.status).toBe('Revoked');
  });

  it('bad requests get ACME problem documents: media type, JWS shape, nonces, signature, account, CSR', async () => {
    const c = new RawAcme(directory, fs.readFileSync(cacert, 'utf8'));
    const dir = await c.directory();
    const problemOf = (res: { status: number; headers: Record<string, string>; body: any }) => {
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.headers['replay-nonce']).toBeTruthy();
      return { status: res.status, type: String(res.body.type).replace('urn:ietf:params:acme:error:', '') };
    };
    const nonce = await c.nonce();
    const body = c.jws(dir.newAccount, { termsOfServiceAgreed: true }, nonce);
    expect(problemOf(await c.request('POST', dir.newAccount, body, 'application/json'))).toEqual({ status: 415, type: 'malformed' });
    expect(problemOf(await c.request('POST', dir.newAccount, '{"protected": 1}'))).toEqual({ status: 400, type: 'malformed' });
    expect(problemOf(await c.request('POST', dir.newAccount, 'not json at all'))).toEqual({ status: 400, type: 'malformed' });
    expect(problemOf(await c.request('POST', dir.newAccount, c.jws(dir.newAccount, {}, 'made-up-nonce-value-123')))).toEqual({ status: 400, type: 'badNonce' });
    expect(problemOf(await c.request('POST', dir.newAccount, c.jws(dir.newAccount, {}, await c.nonce(), { nonce: undefined })))).toEqual({ status: 400, type: 'badNonce' });
    expect(problemOf(await c.request('POST', dir.newAccount, c.jws(dir.newAccount, {}, await c.nonce(), { alg: 'HS256' })))).toEqual({ status: 400, type: 'badSignatureAlgorithm' });
    expect(problemOf(await c.request('POST', dir.newAccount, c.jws(`${dir.newAccount}x`, {}, await c.nonce())))).toEqual({ status: 401, type: 'unauthorized' });
    const other = new RawAcme(directory, '');
    expect(problemOf(await c.request('POST', dir.newAccount, c.jws(dir.newAccount, {}, await c.nonce(), {}, other.key).replace(/"signature":"[^"]+"/, `"signature":"${'A'.repeat(86)}"`)))).toEqual({ status: 400, type: 'malformed' });
    expect(problemOf(await c.request('POST', dir.newAccount, c.jws(dir.newAccount, { onlyReturnExisting: true }, await c.nonce())))).toEqual({ status: 400, type: 'accountDoesNotExist' });

    // A nonce works once.
    const once = await c.nonce();
    const created = await c.request('POST', dir.newAccount, c.jws(dir.newAccount, { termsOfServiceAgreed: true }, once));
    expect(created.status).toBe(201);
    c.kid = created.headers.location;
    expect(problemOf(await c.request('POST', dir.newOrder, c.jws(dir.newOrder, { identifiers: [{ type: 'dns', value: 'x.acme.test' }] }, once)))).toEqual({ status: 400, type: 'badNonce' });

    expect(problemOf(await c.post(dir.newOrder, { identifiers: [{ type: 'email', value: 'a@b' }] }))).toEqual({ status: 400, type: 'unsupportedIdentifier' });
    expect(problemOf(await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'bad name!' }] }))).toEqual({ status: 400, type: 'rejectedIdentifier' });
    expect(problemOf(await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'x.acme.test' }] }, { kid: `${t.kernel.url}/acme/acct/${'A'.repeat(43)}` }))).toEqual({ status: 400, type: 'accountDoesNotExist' });

    const order = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'x.acme.test' }] });
    expect(order.status).toBe(201);
    expect(order.body.status).toBe('ready');
    expect(problemOf(await c.post(order.body.finalize, { csr: Buffer.from('not a csr').toString('base64url') }))).toEqual({ status: 400, type: 'badCSR' });
    expect(problemOf(await c.post(order.body.finalize, { csr: 'has spaces !' }))).toEqual({ status: 400, type: 'malformed' });
    expect(problemOf(await c.post(`${t.kernel.url}/acme/order/nope`, ''))).toEqual({ status: 404, type: 'malformed' });
    expect(problemOf(await c.request('POST', `${t.kernel.url}/acme/no-such-thing`, '{}'))).toEqual({ status: 404, type: 'malformed' });
    const oversized = await c.request('POST', dir.newOrder, 'x'.repeat(70 * 1024));
    expect(oversized.status).toBe(413);
    expect(await acmeCerts().then((rows) => rows.some((r) => r.common_name === 'x.acme.test'))).toBe(false);
  });
  it('http-01: lego proves an IP name on the configured port, and gets the certificate', async () => {
    const dir = path.join(tmp.dir, 'lego-http01');
    await run('lego', ['--accept-tos', '--email', 'ops@acme.test', '--server', `${t.kernel.url}/acme/profile/prof-acme-http/directory`, '--path', dir,
      '--domains', '127.0.0.1', '--http', '--http.port', `127.0.0.1:${http01Port}`, 'run'], { env: { ...process.env, LEGO_CA_CERTIFICATES: cacert }, timeout: 60_000 });
    const pem = fs.readFileSync(path.join(dir, 'certificates', '127.0.0.1.crt'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0];
    expect(opensslVerifies(tmp.dir, rootPem, pem).ok).toBe(true);
    expect(x509Text(pem)).toContain('IP Address:127.0.0.1');
  });

  it('http-01: a wrong or missing answer invalidates the authorization and the order; a right one makes it ready', async () => {
    const c = new RawAcme(`${t.kernel.url}/acme/profile/prof-acme-http/directory`, fs.readFileSync(cacert, 'utf8'));
    await c.register();
    const dir = await c.directory();
    const answers = new Map<string, string>();
    const srv = await challengeServer(http01Port, answers);
    try {
      const order = async () => {
        const o = await c.post(dir.newOrder, { identifiers: [{ type: 'ip', value: '127.0.0.1' }] });
        expect(o.status).toBe(201);
        expect(o.body.status).toBe('pending');
        const authz = await c.post(o.body.authorizations[0], '');
        expect(authz.body.status).toBe('pending');
        return { order: o, challenge: authz.body.challenges[0] as { url: string; token: string } };
      };
      // Nothing served: invalid, and the order cannot be finalized.
      const first = await order();
      const failed = await c.post(first.challenge.url, {});
      expect(failed.body.status).toBe('invalid');
      expect(failed.body.error.type).toBe('urn:ietf:params:acme:error:incorrectResponse');
      expect((await c.post(first.order.headers.location, '')).body.status).toBe('invalid');
      const notReady = await c.post(first.order.body.finalize, { csr: 'AAAA' });
      expect(notReady.status).toBe(403);
      expect(notReady.body.type).toBe('urn:ietf:params:acme:error:orderNotReady');

      // The wrong key authorization: invalid too.
      const second = await order();
      answers.set(second.challenge.token, `${second.challenge.token}.not-my-thumbprint`);
      expect((await c.post(second.challenge.url, {})).body.status).toBe('invalid');

      // The right one: valid, the order is ready.
      const third = await order();
      const thumbprint = c.kid!.split('/').pop();
      answers.set(third.challenge.token, `${third.challenge.token}.${thumbprint}`);
      const ok = await c.post(third.challenge.url, {});
      expect(ok.body).toMatchObject({ status: 'valid', validated: expect.any(String) });
      expect((await c.post(third.order.headers.location, '')).body.status).toBe('ready');

      // Finalize with a CSR for exactly that name, download, and revoke with the certificate's own key.
      const keyFile = path.join(tmp.dir, 'ip.key');
      const csrDer = (await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-outform', 'DER'], { encoding: 'buffer' })).stdout as Buffer;
      const done = await c.post(third.order.body.finalize, { csr: csrDer.toString('base64url') });
      expect(done.body.status, done.text).toBe('valid');
      const chain = await c.post(done.body.certificate, '');
      expect(chain.headers['content-type']).toBe('application/pem-certificate-chain');
      const leaf = chain.text.split(/(?<=-----END CERTIFICATE-----\n)/)[0];
      expect(opensslVerifies(tmp.dir, rootPem, leaf).ok).toBe(true);
      const certDer = Buffer.from(leaf.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
      const stranger = new RawAcme(c.directoryUrl, fs.readFileSync(cacert, 'utf8'));
      const refused = await stranger.post(dir.revokeCert, { certificate: certDer.toString('base64url') });
      expect(refused.status).toBe(403);
      const holder = new RawAcme(c.directoryUrl, fs.readFileSync(cacert, 'utf8'), crypto.createPrivateKey(fs.readFileSync(keyFile)));
      expect((await holder.post(dir.revokeCert, { certificate: certDer.toString('base64url'), reason: 1 })).status).toBe(200);
      const again = await holder.post(dir.revokeCert, { certificate: certDer.toString('base64url') });
      expect(again.body.type).toBe('urn:ietf:params:acme:error:alreadyRevoked');
    } finally {
      await new Promise((resolve) => srv.close(resolve));
    }
  });

  it('a directory offering only http-01 refuses wildcard names (they need dns-01)', async () => {
    const c = new RawAcme(`${t.kernel.url}/acme/profile/prof-acme-http/directory`, fs.readFileSync(cacert, 'utf8'));
    await c.register();
    const res = await c.post((await c.directory()).newOrder, { identifiers: [{ type: 'dns', value: '*.acme.test' }] });
    expect(res.status).toBe(400);
    expect(res.body.type).toBe('urn:ietf:params:acme:error:rejectedIdentifier');
  });
  it('external account binding: lego with the operator-issued key gets a certificate; without it, or with a wrong key, it is refused', async () => {
    const dir = path.join(tmp.dir, 'lego-eab');
    const lego = (domain: string, eab: string[]) => run('lego', ['--accept-tos', '--email', 'eab@acme.test', '--server', `${t.kernel.url}/acme/profile/prof-acme-eab/directory`, '--path', `${dir}-${domain}`,
      ...eab, '--domains', domain, '--http', '--http.port', '127.0.0.1:0', 'run'], { env: { ...process.env, LEGO_CA_CERTIFICATES: cacert }, timeout: 60_000 });
    await expect(lego('no-eab.acme.test', [])).rejects.toThrow(/externalAccountRequired|external account/i);
    await expect(lego('bad-eab.acme.test', ['--eab', '--kid', 'kid-1', '--hmac', crypto.randomBytes(32).toString('base64url')])).rejects.toThrow(/MAC does not verify|unauthorized/i);
    await lego('eab.acme.test', ['--eab', '--kid', 'kid-1', '--hmac', EAB_KEY]);
    const pem = fs.readFileSync(path.join(`${dir}-eab.acme.test`, 'certificates', 'eab.acme.test.crt'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0];
    expect(opensslVerifies(tmp.dir, rootPem, pem).ok).toBe(true);

    // An account made elsewhere (no binding) cannot order at this directory.
    const c = new RawAcme(directory, fs.readFileSync(cacert, 'utf8'));
    await c.register();
    const res = await c.post(`${t.kernel.url}/acme/profile/prof-acme-eab/new-order`, { identifiers: [{ type: 'dns', value: 'sneaky.acme.test' }] });
    expect(res.status).toBe(403);
    expect(res.body.type).toBe('urn:ietf:params:acme:error:unauthorized');
  });
  it('key rollover: the account keeps its URL, the new key signs, the old one no longer does', async () => {
    const c = new RawAcme(directory, fs.readFileSync(cacert, 'utf8'));
    const kid = await c.register();
    const dir = await c.directory();
    const newKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const newJwk = crypto.createPublicKey(newKey).export({ format: 'jwk' });
    const oldJwk = crypto.createPublicKey(c.key).export({ format: 'jwk' });
    const inner = (payload: object, key = newKey) => JSON.parse(c.jws(dir.keyChange, payload, '', { kid: undefined, jwk: crypto.createPublicKey(key).export({ format: 'jwk' }), nonce: undefined }, key));

    // The inner JWS must name this account and its current key, and be signed by the new key.
    expect((await c.post(dir.keyChange, inner({ account: `${kid}x`, oldKey: oldJwk }))).body.type).toBe('urn:ietf:params:acme:error:malformed');
    expect((await c.post(dir.keyChange, inner({ account: kid, oldKey: newJwk }))).body.type).toBe('urn:ietf:params:acme:error:malformed');
    const changed = await c.post(dir.keyChange, inner({ account: kid, oldKey: oldJwk }));
    expect(changed.status, changed.text).toBe(200);
    expect(changed.headers.location).toBe(kid);

    // The old key no longer signs for the account; the new one does, under the same URL.
    const order = { identifiers: [{ type: 'dns', value: 'rolled.acme.test' }] };
    expect((await c.post(dir.newOrder, order)).status).toBe(400);
    const rolled = new RawAcme(directory, fs.readFileSync(cacert, 'utf8'), newKey);
    rolled.kid = kid;
    expect((await rolled.post(dir.newOrder, order)).status).toBe(201);
    const lookup = new RawAcme(directory, fs.readFileSync(cacert, 'utf8'), newKey);
    const found = await lookup.post(dir.newAccount, { onlyReturnExisting: true });
    expect(found.status).toBe(200);
    expect(found.headers.location).toBe(kid);
    const oldLookup = new RawAcme(directory, fs.readFileSync(cacert, 'utf8'), c.key);
    expect((await oldLookup.post(dir.newAccount, { termsOfServiceAgreed: true })).status).toBe(401);
  });
});
