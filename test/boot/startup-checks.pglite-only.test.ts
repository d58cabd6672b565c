import 'reflect-metadata';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnServe } from '../support/spawn-kernel.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-startcheck-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function makeCert(name: string, notBefore: Date, notAfter: Date) {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: `CN=${name}`, notBefore, notAfter, keys, signingAlgorithm: alg });
  const pkcs8 = Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
  const certPath = path.join(dir, `${name}.crt`);
  const keyPath = path.join(dir, `${name}.key`);
  fs.writeFileSync(certPath, cert.toString('pem'));
  fs.writeFileSync(keyPath, key);
  return { certPath, keyPath };
}

async function expectStartRefused(env: Record<string, string>, message: RegExp) {
  const serve = spawnServe({ CERTCTL_DATA_DIR: path.join(dir, crypto.randomUUID()), CERTCTL_SERVER_PORT: '0', ...env });
  const code = await serve.exited;
  expect(code).toBe(78);
  expect(serve.stderr()).toMatch(message);
  expect(serve.stdout()).not.toContain('listening');
}

describe('a bad configuration stops the start with a clear message', () => {
  const day = 86_400_000;

  it('a file that is not a certificate', async () => {
    const garbage = path.join(dir, 'garbage.crt');
    fs.writeFileSync(garbage, 'hello');
    const { keyPath } = await makeCert('g', new Date(Date.now() - day), new Date(Date.now() + day));
    await expectStartRefused({ CERTCTL_TLS_CERT_PATH: garbage, CERTCTL_TLS_KEY_PATH: keyPath }, /TLS certificate .*garbage\.crt is unusable: not a PEM X\.509 certificate/);
  });

  it('a key that does not match', async () => {
    const a = await makeCert('a', new Date(Date.now() - day), new Date(Date.now() + day));
    const b = await makeCert('b', new Date(Date.now() - day), new Date(Date.now() + day));
    await expectStartRefused({ CERTCTL_TLS_CERT_PATH: a.certPath, CERTCTL_TLS_KEY_PATH: b.keyPath }, /does not match the certificate/);
  });

  it('an expired certificate', async () => {
    const old = await makeCert('old', new Date(Date.now() - 10 * day), new Date(Date.now() - day));
    await expectStartRefused({ CERTCTL_TLS_CERT_PATH: old.certPath, CERTCTL_TLS_KEY_PATH: old.keyPath }, /unusable: expired/);
  });

  it('a missing file, and only one of the two paths', async () => {
    await expectStartRefused({ CERTCTL_TLS_CERT_PATH: path.join(dir, 'nope.crt'), CERTCTL_TLS_KEY_PATH: path.join(dir, 'nope.key') }, /cannot read it/);
    await expectStartRefused({ CERTCTL_TLS_CERT_PATH: path.join(dir, 'nope.crt') }, /must be set together/);
  });

  it('malformed settings name the variable', async () => {
    await expectStartRefused({ CERTCTL_SERVER_PORT: 'eighty' }, /CERTCTL_SERVER_PORT: "eighty" is not a whole number/);
    await expectStartRefused({ CERTCTL_AUTH_TYPE: 'password' }, /CERTCTL_AUTH_TYPE: "password" must be one of api-key, none/);
    await expectStartRefused({ CERTCTL_RENEWAL_CHECK_INTERVAL: 'soon' }, /CERTCTL_RENEWAL_CHECK_INTERVAL: "soon" is not a duration/);
    await expectStartRefused({ CERTCTL_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, /Cannot connect to PostgreSQL/);
  });

  it('a valid operator certificate is used as given', async () => {
    const good = await makeCert('localhost', new Date(Date.now() - day), new Date(Date.now() + 30 * day));
    const serve = spawnServe({ CERTCTL_DATA_DIR: path.join(dir, 'good'), CERTCTL_SERVER_PORT: '0', CERTCTL_TLS_CERT_PATH: good.certPath, CERTCTL_TLS_KEY_PATH: good.keyPath });
    await serve.ready;
    expect(fs.existsSync(path.join(dir, 'good', 'tls', 'server.crt'))).toBe(false);
    await serve.stop();
  }, 60_000);
});
