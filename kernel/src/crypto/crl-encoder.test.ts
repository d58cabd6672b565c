import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCrl, packCrlEntries } from './crl-encoder.js';
import { CryptoError } from './crypto-types.js';

describe('streaming CRL encoder', () => {
  let dir: string;
  let certPem: string;
  let keyPem: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-crl-unit-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'ca.key'), '-out', path.join(dir, 'ca.pem'),
      '-days', '30', '-subj', '/CN=CRL Unit CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { stdio: 'ignore' });
    certPem = fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8');
    keyPem = fs.readFileSync(path.join(dir, 'ca.key'), 'utf8');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const when = Date.UTC(2026, 10, 22, 12, 0, 0);
  const entries = [
    { serialHex: '01', revokedAtMs: when, reasonCode: 1 },
    // Top bit set: the INTEGER needs a sign byte.
    { serialHex: 'ff00112233445566778899aabbccddeeff001122', revokedAtMs: when + 1000, reasonCode: 0 },
    // After 2049: GeneralizedTime.
    { serialHex: '7abc', revokedAtMs: Date.UTC(2051, 0, 2, 3, 4, 5), reasonCode: 10 },
  ];

  it('writes a CRL that pkijs parses field by field and openssl verifies', () => {
    const { der, entries: n } = encodeCrl({ issuerCertPem: certPem, issuerKeyPem: keyPem, crlNumber: '300', thisUpdate: when, nextUpdate: when + 86_400_000, ...packCrlEntries(entries) });
    expect(n).toBe(3);
    const crl = pkijs.CertificateRevocationList.fromBER(Buffer.from(der));
    expect(crl.version).toBe(1);
    expect(crl.thisUpdate.value.getTime()).toBe(when);
    expect(crl.nextUpdate!.value.getTime()).toBe(when + 86_400_000);
    const revoked = crl.revokedCertificates!;
    expect(revoked.map((r) => Buffer.from(r.userCertificate.valueBlock.valueHexView).toString('hex'))).toEqual(['01', '00ff00112233445566778899aabbccddeeff001122', '7abc']);
    expect(revoked.map((r) => r.revocationDate.value.getTime())).toEqual([when, when + 1000, Date.UTC(2051, 0, 2, 3, 4, 5)]);
    expect(revoked[2].revocationDate.type).toBe(1); // GeneralizedTime
    const reason = (r: pkijs.RevokedCertificate) => r.crlEntryExtensions?.extensions.find((e) => e.extnID === '2.5.29.21');
    expect(reason(revoked[1])).toBeUndefined();
    const code = (r: pkijs.RevokedCertificate) => (asn1js.fromBER(reason(r)!.extnValue.valueBlock.valueHexView).result as asn1js.Enumerated).valueBlock.valueDec;
    expect([code(revoked[0]), code(revoked[2])]).toEqual([1, 10]);
    const exts = crl.crlExtensions!.extensions.map((e) => e.extnID);
    expect(exts).toEqual(['2.5.29.35', '2.5.29.20']);
    const number = asn1js.fromBER(crl.crlExtensions!.extensions[1].extnValue.valueBlock.valueHexView).result as asn1js.Integer;
    expect(number.valueBlock.valueDec).toBe(300);

    fs.writeFileSync(path.join(dir, 'crl.der'), der);
    const out = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', path.join(dir, 'crl.der'), '-CAfile', path.join(dir, 'ca.pem'), '-noout'], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    expect(out).toBe('');
  });

  it('writes an empty CRL without a revokedCertificates field', () => {
    const { der } = encodeCrl({ issuerCertPem: certPem, issuerKeyPem: keyPem, crlNumber: '1', thisUpdate: when, nextUpdate: when + 1000, ...packCrlEntries([]) });
    const crl = pkijs.CertificateRevocationList.fromBER(Buffer.from(der));
    expect(crl.revokedCertificates).toBeUndefined();
  });

  it('refuses inconsistent requests', () => {
    const base = { issuerCertPem: certPem, issuerKeyPem: keyPem, crlNumber: '1', thisUpdate: when, nextUpdate: when + 1000 };
    const packed = packCrlEntries(entries);
    expect(() => encodeCrl({ ...base, ...packed, count: 4 })).toThrow(CryptoError);
    expect(() => encodeCrl({ ...base, ...packed, nextUpdate: when })).toThrow(/nextUpdate/);
    expect(() => encodeCrl({ ...base, ...packed, crlNumber: '-1' })).toThrow(/crlNumber/);
    expect(() => encodeCrl({ ...base, ...packCrlEntries([{ serialHex: 'aa'.repeat(22), revokedAtMs: when, reasonCode: 0 }]) })).toThrow(/20 bytes/);
  });
});
