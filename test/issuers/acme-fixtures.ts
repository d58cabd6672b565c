import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh P-256 CSR (openssl) for these names; the first is the CN. The key stays in a temp dir that is removed. */
export function csrFor(names: string[], subjectCn = names[0]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-acme-csr-'));
  try {
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'r.csr'),
      '-subj', `/CN=${subjectCn}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    return fs.readFileSync(path.join(dir, 'r.csr'), 'utf8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const issueRequest = (certificateId: string, csrPem: string, names: string[]) => ({
  certificateId, csrPem, commonName: names[0], sans: names, profile: { id: null, maxTtlSeconds: null, ekus: ['serverAuth'] },
});
