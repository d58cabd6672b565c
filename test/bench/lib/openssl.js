import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Runs the openssl CLI in `cwd`; its output, or a thrown error carrying stderr. */
export const ssl = (args, cwd) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed P-256 CA in `dir` (files `key` and `cert`); returns the PEMs. */
export function makeCa(dir, cn, { key = 'ca.key', cert = 'ca.crt' } = {}) {
  ssl(['req', '-x509', ...P256, '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { certPem: fs.readFileSync(path.join(dir, cert), 'utf8'), keyPem: fs.readFileSync(path.join(dir, key), 'utf8') };
}

/** A P-256 key `<name>.key` and CSR `<name>.csr` in `dir`; returns the CSR PEM. */
export function makeCsr(dir, name, cn, { sans } = {}) {
  ssl(['req', '-new', ...P256, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`,
    ...(sans ? ['-addext', `subjectAltName=${sans}`] : [])], dir);
  return fs.readFileSync(path.join(dir, `${name}.csr`), 'utf8');
}
