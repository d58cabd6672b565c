import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCert {
  certificatePem: string;
  chainPem: string[];
  keyPem: string;
  /** Lowercase hex SHA-256 of the leaf's DER, as DeployRequest.fingerprintSha256 carries it. */
  fingerprintSha256: string;
}

const openssl = (args: string[], cwd: string) => execFileSync('/usr/bin/openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

export const fingerprintOf = (pem: string) => new crypto.X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();

/**
 * A small real PKI made with openssl: one CA and ECDSA P-256 leaves it signs,
 * each with its private key, as the agent would have them after an issuance.
 */
export function makeTestPki(): { issue(commonName: string): TestCert; caPem: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pki-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=certctl target test CA'], dir);
  const caPem = fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8');
  let n = 0;
  return {
    caPem,
    issue(commonName) {
      const base = `leaf${++n}`;
      fs.writeFileSync(path.join(dir, `${base}.ext`), `subjectAltName=DNS:${commonName}\nextendedKeyUsage=serverAuth\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${commonName}`], dir);
      openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '7', '-out', `${base}.pem`, '-extfile', `${base}.ext`], dir);
      const certificatePem = fs.readFileSync(path.join(dir, `${base}.pem`), 'utf8');
      return { certificatePem, chainPem: [caPem], keyPem: fs.readFileSync(path.join(dir, `${base}.key`), 'utf8'), fingerprintSha256: fingerprintOf(certificatePem) };
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
