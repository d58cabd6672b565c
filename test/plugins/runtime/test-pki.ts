import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Test material made with the openssl CLI (the reference implementation our
 * crypto is checked against): a CA and CSRs written to a temp folder.
 */
export interface TestPki {
  dir: string;
  caCertPem: string;
  caKeyPem: string;
  csr(name: string, opts?: { key?: 'ec' | 'rsa' | 'ed25519'; subject?: string; sans?: string }): string;
  openssl(args: string[], input?: string): string;
  write(name: string, text: string): string;
  cleanup(): void;
}

export function makeTestPki(opts: { caKey?: 'ec384' | 'rsa' } = {}): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pki-'));
  const openssl = (args: string[], input?: string) => execFileSync('openssl', args, { cwd: dir, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  const keyArgs = opts.caKey === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
  openssl(['req', '-x509', ...keyArgs, '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=certctl Test CA/O=certctl tests',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash']);
  return {
    dir,
    caCertPem: fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    // openssl 3 writes PKCS#8 ("BEGIN PRIVATE KEY") for -keyout.
    caKeyPem: fs.readFileSync(path.join(dir, 'ca.key'), 'utf8'),
    csr(name, o = {}) {
      const key = o.key ?? 'ec';
      const keyArgs = key === 'rsa' ? ['-newkey', 'rsa:2048'] : key === 'ed25519' ? ['-newkey', 'ed25519'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
      const san = o.sans ? ['-addext', `subjectAltName=${o.sans}`] : [];
      openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', o.subject ?? `/CN=${name}.example.test`, ...san]);
      return fs.readFileSync(path.join(dir, `${name}.csr`), 'utf8');
    },
    openssl,
    write(name, text) {
      fs.writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
