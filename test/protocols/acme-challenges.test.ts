import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openssl, opensslVerifies, scratch, x509Text } from '../ca/ca-support.js';
import { freePort } from '../support/free-port.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import type { TestKernel } from '../support/test-kernel.js';
import { waitFor } from '../support/wait.js';
import { RawAcme, startAcmeServer } from './acme-client.js';

const run = promisify(execFile);

/*
 * The ACME server in challenge mode: the kernel validates http-01, dns-01 and
 * tls-alpn-01 with names that resolve through the endpoint's own DNS server
 * (`dns_resolvers`), here Debian's pebble-challtestsrv answering every A query with
 * 127.0.0.1 and TXT records set through its management API. Debian's certbot
 * (standalone and webroot) and lego (http, dns through an exec script, tls) obtain,
 * renew and revoke unchanged; wrong answers leave challenges invalid with the
 * proper ACME problem, never a 500.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('ACME server challenges (http-01, dns-01, tls-alpn-01)', () => {
  let t: TestKernel;
  let knex: Knex;
  let cacert: string;
  let directory: string;
  let chain: string[];
  let http01Port: number;
  let tlsPort: number;
  let dnsPort: number;
  let mgmtPort: number;
  let challtestsrv: ChildProcess;
  const tmp = scratch();
  const procs: ChildProcess[] = [];

  const verifies = (pem: string) => opensslVerifies(tmp.dir, chain[chain.length - 1], pem.split(/(?<=-----END CERTIFICATE-----\n)/)[0], chain.slice(0, -1));
  const serialOf = (pem: string) => /Serial Number:\s*\n?\s*([0-9a-f:]+)/i.exec(x509Text(pem))![1].replace(/:/g, '').toLowerCase().replace(/^0+/, '');
  const statusOfSerial = async (serial: string) => ((await knex('managed_certificates').whereRaw("tags->>'protocol' = 'acme-server'").select('serial_number', 'status')) as { serial_number: string; status: string }[])
    .find((r) => r.serial_number.replace(/^0+/, '').toLowerCase() === serial)?.status;
  const manage = async (op: 'set-txt' | 'clear-txt' | 'add-a' | 'add-caa', body: Record<string, unknown>) => {
    const res = await fetch(`http://127.0.0.1:${mgmtPort}/${op}`, { method: 'POST', body: JSON.stringify(body) });
    expect(res.status).toBe(200);
  };

  beforeAll(async () => {
    [http01Port, tlsPort, dnsPort, mgmtPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    challtestsrv = spawn('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
      '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${mgmtPort}`], { stdio: 'ignore' });
    const deadDns = await freePort();
    ({ t, cacert, directory, chainPem: chain } = await startAcmeServer('iss-chal', {
      mode: 'challenge', http01_port: http01Port, tlsalpn01_port: tlsPort, dns_resolvers: [`127.0.0.1:${dnsPort}`], caa_identities: ['certctl.test'],
      profiles: { 'prof-http-only': { challenge_types: ['http-01'] }, 'prof-dead-dns': { dns_resolvers: [`127.0.0.1:${deadDns}`] } },
    }, (k) => k.kernel.db.knex('certificate_profiles').insert([{ id: 'prof-http-only', name: 'http-01 only' }, { id: 'prof-dead-dns', name: 'unreachable DNS' }])));
    knex = t.kernel.db.knex;
    await waitFor('pebble-challtestsrv', () => fetch(`http://127.0.0.1:${mgmtPort}/clear-txt`, { method: 'POST', body: '{"host":"x."}' }).then((r) => r.ok, () => false));
  });
  afterAll(async () => {
    for (const p of [...procs, challtestsrv]) p?.kill();
    await t?.stop();
    tmp.cleanup();
  });

  const certbot = (args: string[]) => {
    const dir = path.join(tmp.dir, 'certbot');
    return run('certbot', [...args, '--non-interactive', '--agree-tos', '--email', 'ops@acme.test', '--config-dir', `${dir}/config`, '--work-dir', `${dir}/work`, '--logs-dir', `${dir}/logs`, '--server', directory],
      { env: { ...process.env, REQUESTS_CA_BUNDLE: cacert }, timeout: 90_000 });
  };
  const lego = (dir: string, args: string[], env: Record<string, string> = {}) =>
    run('lego', ['--accept-tos', '--email', 'ops@acme.test', '--server', directory, '--path', path.join(tmp.dir, dir), ...args],
      { env: { ...process.env, LEGO_CA_CERTIFICATES: cacert, ...env }, timeout: 90_000 });
  const legoCert = (dir: string, name: string) => fs.readFileSync(path.join(tmp.dir, dir, 'certificates', `${name}.crt`), 'utf8');

  it('certbot --standalone: http-01 for a DNS name through the configured resolver; obtains, renews and revokes', async () => {
    await certbot(['certonly', '--standalone', '--http-01-port', String(http01Port), '--http-01-address', '127.0.0.1', '-d', 'app.acme.test', '--cert-name', 'app']);
    const live = path.join(tmp.dir, 'certbot', 'config', 'live', 'app');
    const first = fs.readFileSync(path.join(live, 'cert.pem'), 'utf8');
    expect(verifies(first).ok).toBe(true);
    expect(x509Text(first)).toContain('DNS:app.acme.test');

    await certbot(['renew', '--force-renewal', '--no-random-sleep-on-renew', '--cert-name', 'app']);
    const second = fs.readFileSync(path.join(live, 'cert.pem'), 'utf8');
    expect(serialOf(second)).not.toBe(serialOf(first));
    expect(verifies(second).ok).toBe(true);

    await certbot(['revoke', '--cert-path', path.join(live, 'cert.pem'), '--reason', 'superseded', '--no-delete-after-revoke']);
    expect(await statusOfSerial(serialOf(second))).toBe('Revoked');
  }, 240_000); // three certbot runs: seconds of start-up each on a loaded machine

  it('certbot --webroot: the answer is served by a plain static HTTP server', async () => {
    const webroot = path.join(tmp.dir, 'webroot');
    fs.mkdirSync(webroot);
    const server = spawn('/usr/bin/python3', ['-m', 'http.server', String(http01Port), '--bind', '127.0.0.1', '--directory', webroot], { stdio: 'ignore' });
    procs.push(server);
    try {
      await waitFor('the static server', () => fetch(`http://127.0.0.1:${http01Port}/`).then((r) => r.ok, () => false));
      await certbot(['certonly', '--webroot', '-w', webroot, '-d', 'web.acme.test', '--cert-name', 'web']);
      const pem = fs.readFileSync(path.join(tmp.dir, 'certbot', 'config', 'live', 'web', 'cert.pem'), 'utf8');
      expect(verifies(pem).ok).toBe(true);
      expect(x509Text(pem)).toContain('DNS:web.acme.test');
    } finally {
      server.kill();
      await new Promise((resolve) => (server.exitCode !== null ? resolve(null) : server.once('exit', resolve)));
    }
  }, 120_000);

  it('lego --http: obtains, renews and revokes for a DNS name', async () => {
    const args = ['--domains', 'lego.acme.test', '--http', '--http.port', `127.0.0.1:${http01Port}`];
    await lego('lego-http', [...args, 'run']);
    const first = legoCert('lego-http', 'lego.acme.test');
    expect(verifies(first).ok).toBe(true);
    await lego('lego-http', [...args, 'renew', '--days', '10000', '--no-random-sleep']);
    const second = legoCert('lego-http', 'lego.acme.test');
    expect(serialOf(second)).not.toBe(serialOf(first));
    expect(verifies(second).ok).toBe(true);
    await lego('lego-http', [...args, 'revoke']);
    expect(await statusOfSerial(serialOf(second))).toBe('Revoked');
  }, 180_000);

  it('lego --dns exec: dns-01 through the resolver, including a wildcard name', async () => {
    const hook = path.join(tmp.dir, 'dns-hook.sh');
    // lego calls: <script> present|cleanup <fqdn> <value>
    fs.writeFileSync(hook, `#!/bin/sh
set -e
case "$1" in
  present) curl -sf -X POST -d "{\\"host\\":\\"$2\\",\\"value\\":\\"$3\\"}" http://127.0.0.1:${mgmtPort}/set-txt ;;
  cleanup) curl -sf -X POST -d "{\\"host\\":\\"$2\\"}" http://127.0.0.1:${mgmtPort}/clear-txt ;;
esac
`, { mode: 0o755 });
    await lego('lego-dns', ['--domains', '*.wild.acme.test', '--domains', 'wild.acme.test', '--dns', 'exec', '--dns.resolvers', `127.0.0.1:${dnsPort}`, '--dns.disable-cp', 'run'],
      { EXEC_PATH: hook, EXEC_POLLING_INTERVAL: '1', EXEC_PROPAGATION_TIMEOUT: '30', EXEC_SEQUENCE_INTERVAL: '1' });
    const pem = legoCert('lego-dns', '_.wild.acme.test');
    expect(verifies(pem).ok).toBe(true);
    expect(x509Text(pem)).toMatch(/DNS:\*\.wild\.acme\.test/);
  }, 120_000);

  it('lego --tls: tls-alpn-01 on the configured port', async () => {
    await lego('lego-tls', ['--domains', 'tls.acme.test', '--tls', '--tls.port', `127.0.0.1:${tlsPort}`, 'run']);
    const pem = legoCert('lego-tls', 'tls.acme.test');
    expect(verifies(pem).ok).toBe(true);
    expect(x509Text(pem)).toContain('DNS:tls.acme.test');
  }, 120_000);

  describe('wrong answers: invalid challenges with ACME problems', () => {
    let c: RawAcme;
    let dir: Record<string, string>;
    let thumbprint: string;
    beforeAll(async () => {
      c = new RawAcme(directory, fs.readFileSync(cacert, 'utf8'));
      await c.register();
      dir = await c.directory();
      thumbprint = c.kid!.split('/').pop()!;
    });
    /** A new order for one identifier, its authorization URL and its challenges by type. */
    const order = async (value: string, type = 'dns', client = c, newOrder = dir.newOrder) => {
      const o = await client.post(newOrder, { identifiers: [{ type, value }] });
      expect(o.status, o.text).toBe(201);
      const authz = await client.post(o.body.authorizations[0], '');
      const challenges = Object.fromEntries((authz.body.challenges as { type: string; url: string; token: string }[]).map((ch) => [ch.type, ch]));
      return { order: o, authz: authz.body, challenges };
    };
    const problemOf = async (url: string, client = c) => {
      const res = await client.post(url, {});
      expect(res.status, res.text).toBe(200);
      expect(res.body.status).toBe('invalid');
      return { type: String(res.body.error.type).replace('urn:ietf:params:acme:error:', ''), detail: String(res.body.error.detail) };
    };
    const digest = (token: string) => crypto.createHash('sha256').update(`${token}.${thumbprint}`).digest();

    it('offers the three types for a name, dns-01 alone for a wildcard, no dns-01 for an IP; a profile can narrow them', async () => {
      expect(Object.keys((await order('offer.acme.test')).challenges)).toEqual(['http-01', 'dns-01', 'tls-alpn-01']);
      const wild = await order('*.offer.acme.test');
      expect(wild.authz).toMatchObject({ wildcard: true, identifier: { type: 'dns', value: 'offer.acme.test' } });
      expect(Object.keys(wild.challenges)).toEqual(['dns-01']);
      expect(Object.keys((await order('127.0.0.1', 'ip')).challenges)).toEqual(['http-01', 'tls-alpn-01']);

      const narrow = new RawAcme(`${t.kernel.url}/acme/profile/prof-http-only/directory`, fs.readFileSync(cacert, 'utf8'));
      await narrow.register();
      const newOrder = (await narrow.directory()).newOrder;
      expect(Object.keys((await order('narrow.acme.test', 'dns', narrow, newOrder)).challenges)).toEqual(['http-01']);
      const refused = await narrow.post(newOrder, { identifiers: [{ type: 'dns', value: '*.narrow.acme.test' }] });
      expect(refused.status).toBe(400);
      expect(refused.body.type).toBe('urn:ietf:params:acme:error:rejectedIdentifier');
      // A challenge type the authorization does not offer does not exist.
      const offered = await order('only.acme.test', 'dns', narrow, newOrder);
      expect((await narrow.post(offered.challenges['http-01'].url.replace(/http-01$/, 'dns-01'), {})).status).toBe(404);
    });

    it('dns-01: a wrong TXT value is incorrectResponse, a missing one a dns problem; the order turns invalid', async () => {
      const wrong = await order('wrongtxt.acme.test');
      await manage('set-txt', { host: '_acme-challenge.wrongtxt.acme.test.', value: crypto.randomBytes(32).toString('base64url') });
      expect(await problemOf(wrong.challenges['dns-01'].url)).toMatchObject({ type: 'incorrectResponse' });
      expect((await c.post(wrong.order.headers.location, '')).body.status).toBe('invalid');
      // Once invalid, the other challenges cannot be tried any more.
      expect((await c.post(wrong.challenges['http-01'].url, {})).body.status).toBe('pending');

      const missing = await order('notxt.acme.test');
      expect(await problemOf(missing.challenges['dns-01'].url)).toMatchObject({ type: 'dns', detail: expect.stringContaining('_acme-challenge.notxt.acme.test') });
    });

    it('dns-01: the right TXT value validates (raw client), and the wildcard is proven at the base name', async () => {
      const wild = await order('*.raw.acme.test');
      const ch = wild.challenges['dns-01'];
      await manage('set-txt', { host: '_acme-challenge.raw.acme.test.', value: digest(ch.token).toString('base64url') });
      try {
        const ok = await c.post(ch.url, {});
        expect(ok.body).toMatchObject({ type: 'dns-01', status: 'valid', validated: expect.any(String) });
        // RFC 8555 7.5.1: the challenge links up to its authorization (certbot relies on it), beside the directory.
        expect(ok.headers.link).toContain(`<${wild.order.body.authorizations[0]}>;rel="up"`);
        expect(ok.headers.link).toContain('rel="index"');
        expect((await c.post(wild.order.headers.location, '')).body.status).toBe('ready');
      } finally {
        await manage('clear-txt', { host: '_acme-challenge.raw.acme.test.' });
      }
    });

    it('CAA (RFC 8659): records naming another CA refuse with caa, ours allow, issuewild ";" refuses only the wildcard', async () => {
      const prove = async (value: string) => {
        const o = await order(value);
        const ch = o.challenges['dns-01'];
        await manage('set-txt', { host: `_acme-challenge.${value.replace(/^\*\./, '')}.`, value: digest(ch.token).toString('base64url') });
        const res = await c.post(ch.url, {});
        expect(res.status, res.text).toBe(200);
        return res.body as { status: string; error?: { type: string; detail: string } };
      };
      await manage('add-caa', { host: 'theirs.acme.test.', policies: [{ tag: 'issue', value: 'other-ca.example' }, { tag: 'iodef', value: 'mailto:sec@acme.test' }] });
      await manage('add-caa', { host: 'ours.acme.test.', policies: [{ tag: 'issue', value: 'certctl.test; accounturi=https://x' }, { tag: 'issuewild', value: ';' }] });
      // The relevant record set is found by climbing from the name.
      expect(await prove('www.theirs.acme.test')).toMatchObject({ status: 'invalid', error: { type: 'urn:ietf:params:acme:error:caa', detail: expect.stringContaining('theirs.acme.test') } });
      expect((await prove('ours.acme.test')).status).toBe('valid');
      expect((await prove('*.ours.acme.test')).error?.type).toBe('urn:ietf:params:acme:error:caa');
    });

    it('http-01 and tls-alpn-01 with nothing listening: connection', async () => {
      const a = await order('closed.acme.test');
      expect(await problemOf(a.challenges['http-01'].url)).toMatchObject({ type: 'connection' });
      const b = await order('closed2.acme.test');
      expect(await problemOf(b.challenges['tls-alpn-01'].url)).toMatchObject({ type: 'connection' });
    });

    it('a name the resolver points at a cloud metadata address is never contacted', async () => {
      await manage('add-a', { host: 'imds.acme.test.', addresses: ['169.254.169.254'] });
      const o = await order('imds.acme.test');
      expect(await problemOf(o.challenges['http-01'].url)).toMatchObject({ type: 'connection', detail: expect.stringMatching(/metadata address, which is never contacted/) });
    });

    it('tls-alpn-01: a certificate with the wrong digest, or without the critical extension, is incorrectResponse', async () => {
      const serve = async (name: string, extension: string) => {
        const key = path.join(tmp.dir, `${name}.key`);
        const cert = openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=${name}`, '-days', '1',
          '-addext', `subjectAltName=DNS:${name}`, '-addext', extension]);
        const server = tls.createServer({ key: fs.readFileSync(key), cert, ALPNProtocols: ['acme-tls/1'] }, (s) => s.end());
        await new Promise<void>((resolve) => server.listen(tlsPort, '127.0.0.1', () => resolve()));
        return server;
      };
      const cases = [
        { name: 'badtls.acme.test', ext: (token: string) => `1.3.6.1.5.5.7.1.31=critical,DER:0420${crypto.randomBytes(32).toString('hex')}`, why: /does not match/ },
        { name: 'softtls.acme.test', ext: (token: string) => `1.3.6.1.5.5.7.1.31=DER:0420${digest(token).toString('hex')}`, why: /non-critical/ },
      ];
      for (const k of cases) {
        const o = await order(k.name);
        const server = await serve(k.name, k.ext(o.challenges['tls-alpn-01'].token));
        try {
          const p = await problemOf(o.challenges['tls-alpn-01'].url);
          expect(p.type).toBe('incorrectResponse');
          expect(p.detail).toMatch(k.why);
        } finally {
          await new Promise((resolve) => server.close(resolve));
        }
      }
      // The same server shape with the right digest and the critical flag validates.
      const good = await order('goodtls.acme.test');
      const server = await serve('goodtls.acme.test', `1.3.6.1.5.5.7.1.31=critical,DER:0420${digest(good.challenges['tls-alpn-01'].token).toString('hex')}`);
      try {
        expect((await c.post(good.challenges['tls-alpn-01'].url, {})).body.status).toBe('valid');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('a directory whose DNS server does not answer: dns problem, not a 500', async () => {
      const dead = new RawAcme(`${t.kernel.url}/acme/profile/prof-dead-dns/directory`, fs.readFileSync(cacert, 'utf8'));
      await dead.register();
      const o = await order('nodns.acme.test', 'dns', dead, (await dead.directory()).newOrder);
      expect(await problemOf(o.challenges['http-01'].url, dead)).toMatchObject({ type: 'dns' });
    });
  });
});
