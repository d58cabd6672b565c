import 'reflect-metadata';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { StartupError } from '../errors.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface ServerTls {
  cert: string;
  key: string;
  certPath: string;
  generated: boolean;
  fingerprintSha256: string;
}

/**
 * The control plane's own TLS identity. With CERTCTL_TLS_CERT_PATH/KEY_PATH set the
 * pair must be usable (parses, key matches, currently valid) or the start stops.
 * Without them, a self-signed ECDSA P-256 certificate for this host is made once
 * and kept in <data>/tls/.
 */
export async function loadServerTls(opts: { dataDir: string; certPath?: string; keyPath?: string; hostnames?: string[] }): Promise<ServerTls> {
  if (opts.certPath && opts.keyPath) return checkProvided(opts.certPath, opts.keyPath);
  const dir = path.join(opts.dataDir, 'tls');
  const certPath = path.join(dir, 'server.crt');
  const keyPath = path.join(dir, 'server.key');
  if (fs.existsSync(certPath) && fs.existsSync(keyPath)) {
    const existing = checkProvided(certPath, keyPath, { renewable: true });
    if (existing) return existing;
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { cert, key } = await selfSigned(opts.hostnames ?? ['localhost', os.hostname()]);
  fs.writeFileSync(keyPath, key, { mode: 0o600 });
  fs.writeFileSync(certPath, cert, { mode: 0o644 });
  return { cert, key, certPath, generated: true, fingerprintSha256: new crypto.X509Certificate(cert).fingerprint256 };
}

function checkProvided(certPath: string, keyPath: string): ServerTls;
function checkProvided(certPath: string, keyPath: string, o: { renewable: true }): ServerTls | null;
function checkProvided(certPath: string, keyPath: string, o?: { renewable: true }): ServerTls | null {
  const fail = (why: string): null => {
    if (o?.renewable) return null;
    throw new StartupError(`TLS certificate ${certPath} is unusable: ${why}`);
  };
  let cert: string;
  let key: string;
  try {
    cert = fs.readFileSync(certPath, 'utf8');
    key = fs.readFileSync(keyPath, 'utf8');
  } catch (err) {
    return fail(`cannot read it or its key (${(err as Error).message})`);
  }
  let parsed: crypto.X509Certificate;
  try {
    parsed = new crypto.X509Certificate(cert);
  } catch {
    return fail('not a PEM X.509 certificate');
  }
  const now = Date.now();
  if (new Date(parsed.validFrom).getTime() > now) return fail(`not valid before ${parsed.validFrom}`);
  if (new Date(parsed.validTo).getTime() <= now + (o?.renewable ? 7 * 86_400_000 : 0)) return fail(`expired on ${parsed.validTo}`);
  try {
    if (!parsed.checkPrivateKey(crypto.createPrivateKey(key))) return fail(`the key in ${keyPath} does not match the certificate`);
    tls.createSecureContext({ cert, key, minVersion: 'TLSv1.3' });
  } catch (err) {
    return fail(`the key in ${keyPath} cannot be used (${(err as Error).message})`);
  }
  return { cert, key, certPath, generated: false, fingerprintSha256: parsed.fingerprint256 };
}

async function selfSigned(hostnames: string[]): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
  const names = [...new Set(hostnames.filter(Boolean))];
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: crypto.randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    name: `CN=${names[0]}, O=certctl bootstrap`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 397 * 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.map((n) => ({ type: 'dns' as const, value: n })),
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await crypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = crypto.createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
  return { cert: cert.toString('pem') + '\n', key };
}
