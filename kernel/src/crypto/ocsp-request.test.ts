import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DerError, explicit, octetString, oid, seq } from './der.js';
import { NONCE_OID, parseOcspRequest } from './ocsp-request.js';

describe('OCSP request parser', () => {
  let dir: string;
  const req = (args: string[]) => {
    const file = path.join(dir, `r${Math.random().toString(36).slice(2)}.der`);
    execFileSync('openssl', ['ocsp', '-issuer', path.join(dir, 'ca.pem'), ...args, '-reqout', file], { stdio: 'ignore' });
    return fs.readFileSync(file);
  };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-ocsp-unit-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'ca.key'), '-out', path.join(dir, 'ca.pem'), '-days', '1', '-subj', '/CN=OCSP Unit CA'], { stdio: 'ignore' });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads openssl requests: CertIDs (sha1 and sha256), serials, the nonce', () => {
    const one = parseOcspRequest(req(['-serial', '0x8001', '-no_nonce']));
    expect(one.nonceExtension).toBeNull();
    expect(one.certIds).toHaveLength(1);
    expect(one.certIds[0]).toMatchObject({ hash: 'sha1', serialHex: '8001' });
    expect(one.certIds[0].nameHash).toHaveLength(40);
    const two = parseOcspRequest(req(['-sha256', '-serial', '0x01', '-serial', '0x0abc']));
    expect(two.certIds.map((c) => [c.hash, c.serialHex])).toEqual([['sha256', '01'], ['sha256', '0abc']]);
    expect(two.nonceExtension).not.toBeNull();
  });

  it('refuses what is not a well-formed request', () => {
    const good = req(['-serial', '0x01', '-no_nonce']);
    const bad = [
      Buffer.alloc(0),
      Buffer.from('garbage'),
      Buffer.concat([good, Buffer.from([0])]), // trailing byte
      good.subarray(0, good.length - 3), // truncated
      Buffer.from([0x30, 0x02, 0x30, 0x00]), // empty TBSRequest
      Buffer.from([0x30, 0x04, 0x30, 0x02, 0x30, 0x00]), // empty requestList
      Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), // length past the buffer
    ];
    for (const b of bad) expect(() => parseOcspRequest(b), b.toString('hex')).toThrow(DerError);
    // Nonces of 1 to 32 octets are echoed; a 33-octet one is refused (RFC 8954).
    const certId = parseOcspRequest(good).certIds[0].der;
    const withNonce = (n: number) => seq(seq(seq(seq(certId)), explicit(2, seq(seq(oid(NONCE_OID), octetString(octetString(Buffer.alloc(n, 7))))))));
    expect(parseOcspRequest(withNonce(32)).nonceExtension).not.toBeNull();
    expect(() => parseOcspRequest(withNonce(33))).toThrow(/nonce/);
  });
});
