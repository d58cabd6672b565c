import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportBatches, scanForCertificates } from './discovery-scan.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-scan-')));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function selfSigned(cn: string): { cert: string; key: string } {
  const keyFile = path.join(tmp, `${cn}.tmpkey`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-subj', `/CN=${cn}`, '-days', '3'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const cert = execFileSync('openssl', ['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-days', '3']).toString();
  const key = fs.readFileSync(keyFile, 'utf8');
  fs.rmSync(keyFile);
  return { cert, key };
}
const fp = (pem: string) => crypto.createHash('sha256').update(new crypto.X509Certificate(pem).raw).digest('hex');

describe('filesystem discovery', () => {
  const a = selfSigned('a.example');
  const b = selfSigned('b.example');
  const c = selfSigned('c.example');
  beforeAll(() => {
    fs.mkdirSync(path.join(tmp, 'etc', 'ssl', 'deep'), { recursive: true });
    // Key and certificate in one file: only the certificate is reported.
    fs.writeFileSync(path.join(tmp, 'etc', 'ssl', 'combined.pem'), `${a.key}${a.cert}`);
    fs.writeFileSync(path.join(tmp, 'etc', 'ssl', 'chain.crt'), `${b.cert}${c.cert}`);
    fs.writeFileSync(path.join(tmp, 'etc', 'ssl', 'deep', 'c.der'), new crypto.X509Certificate(c.cert).raw);
    fs.writeFileSync(path.join(tmp, 'etc', 'ssl', 'key-only.pem'), a.key);
    fs.writeFileSync(path.join(tmp, 'etc', 'ssl', 'notes.txt'), b.cert); // wrong extension: not read
    fs.writeFileSync(path.join(tmp, 'etc', 'ssl', 'junk.cer'), 'garbage');
    fs.writeFileSync(path.join(tmp, 'etc', 'ssl', 'huge.pem'), Buffer.alloc(2 * 1024 * 1024, 65));
    fs.symlinkSync(path.join(tmp, 'etc'), path.join(tmp, 'etc', 'ssl', 'deep', 'loop')); // a symlink loop
  });

  it('finds PEM and DER certificates (several per file), never a key, and ends symlink loops', async () => {
    const report = await scanForCertificates([path.join(tmp, 'etc')]);
    const found = report.certificates.map((x) => [path.relative(tmp, x.source_path), x.fingerprint_sha256]).sort();
    expect(found).toEqual([
      ['etc/ssl/chain.crt', fp(b.cert)],
      ['etc/ssl/chain.crt', fp(c.cert)],
      ['etc/ssl/combined.pem', fp(a.cert)],
      ['etc/ssl/deep/c.der', fp(c.cert)],
    ].sort());
    expect(JSON.stringify(report)).not.toContain('PRIVATE KEY');
    for (const x of report.certificates) expect(fp(x.certificate_pem)).toBe(x.fingerprint_sha256);
    const errors = Object.fromEntries((report.errors ?? []).map((e) => [path.relative(tmp, e.path), e.error]));
    expect(errors['etc/ssl/junk.cer']).toMatch(/neither PEM nor/);
    expect(errors['etc/ssl/huge.pem']).toMatch(/larger than/);
    expect(errors['etc/ssl/key-only.pem']).toBeUndefined();
  });

  it('reports a missing directory as an error, and splits big reports', async () => {
    const report = await scanForCertificates([path.join(tmp, 'nope'), path.join(tmp, 'etc')]);
    expect(report.errors?.some((e) => e.path === path.join(tmp, 'nope') && e.error === 'ENOENT')).toBe(true);
    const batches = reportBatches(report, 2000, 2);
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.flatMap((x) => x.certificates)).toEqual(report.certificates);
    expect(batches.every((x) => x.certificates.length <= 2)).toBe(true);
  });
});
