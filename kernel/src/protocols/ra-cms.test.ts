import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEnvelope, RaCmsError, signAsRa } from './ra-cms.js';

/* The RA's CMS operations against openssl: envelopes openssl makes are opened, signatures made here verify with openssl. */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-cms-'));
const file = (name: string) => path.join(dir, name);
const openssl = (args: string[], input?: Buffer | string) => execFileSync('openssl', args, { cwd: dir, input, stdio: ['pipe', 'pipe', 'pipe'] });

function makeRa(name: string): { certificatePem: string; key: crypto.KeyObject } {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${name}`, '-days', '2']);
  return { certificatePem: fs.readFileSync(file(`${name}.pem`), 'utf8'), key: crypto.createPrivateKey(fs.readFileSync(file(`${name}.key`))) };
}

const envelope = (content: string, recipient: string, cipher: string, extra: string[] = []) =>
  openssl(['cms', '-encrypt', '-binary', `-${cipher}`, '-outform', 'DER', '-recip', `${recipient}.pem`, ...extra], content);

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return null;
  } catch (err) {
    return err instanceof RaCmsError ? err.code : String(err);
  }
};

describe('RA CMS operations', () => {
  let ra: ReturnType<typeof makeRa>;
  let other: ReturnType<typeof makeRa>;
  beforeAll(() => {
    ra = makeRa('ra');
    other = makeRa('other');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each([['aes128', 'aes-128-cbc'], ['aes256', 'aes-256-cbc'], ['des3', 'des-ede3-cbc']])('opens an EnvelopedData openssl made for the RA (%s, RSAES-PKCS1-v1_5) and names its cipher', (cipher, node) => {
    expect(openEnvelope(envelope('a CSR would be here', 'ra', cipher), [ra])).toEqual({ content: Buffer.from('a CSR would be here'), cipher: node });
  });

  it('opens RSAES-OAEP key transport, and finds the RA among several recipients and several RA keys', () => {
    expect(openEnvelope(envelope('oaep', 'ra', 'aes128', ['-keyopt', 'rsa_padding_mode:oaep']), [ra]).content.toString()).toBe('oaep');
    const both = openssl(['cms', '-encrypt', '-binary', '-aes256', '-outform', 'DER', '-recip', 'other.pem', '-recip', 'ra.pem'], 'two recipients');
    expect(openEnvelope(both, [other, ra]).content.toString()).toBe('two recipients');
  });

  it('an envelope for someone else, garbage and truncation are refused with their own codes', () => {
    const forOther = envelope('not for the RA', 'other', 'aes128');
    expect(codeOf(() => openEnvelope(forOther, [ra]))).toBe('not_for_ra');
    expect(codeOf(() => openEnvelope(Buffer.from('garbage'), [ra]))).toBe('bad_message');
    expect(codeOf(() => openEnvelope(forOther.subarray(0, forOther.length - 5), [ra]))).toBe('bad_message');
  });

  it('a damaged key block and a wrong key give the same decrypt_failed (implicit rejection, no padding oracle)', () => {
    const der = envelope('secret content', 'ra', 'aes128');
    const info = pkijs.ContentInfo.fromBER(new Uint8Array(der).slice().buffer);
    const env = new pkijs.EnvelopedData({ schema: info.content });
    const ktri = env.recipientInfos[0].value as pkijs.KeyTransRecipientInfo;
    const damaged = Buffer.from(ktri.encryptedKey.valueBlock.valueHexView);
    damaged[7] ^= 0x55;
    ktri.encryptedKey = new asn1js.OctetString({ valueHex: new Uint8Array(damaged).slice().buffer });
    const rebuilt = Buffer.from(new pkijs.ContentInfo({ contentType: info.contentType, content: env.toSchema() }).toSchema().toBER(false));
    // Implicit rejection turns a bad key block into a random content key, so about one time in
    // 256 its padding happens to check and garbage comes back (which then fails as a request).
    // What must hold every time: never the content, and no failure other than decrypt_failed.
    const outcome = (fn: () => { content: Buffer }) => {
      try {
        return { content: fn().content.toString() };
      } catch (err) {
        return { code: err instanceof RaCmsError ? err.code : String(err) };
      }
    };
    // The damaged key block, and the RA's certificate with another key: the same answers.
    for (const o of [outcome(() => openEnvelope(rebuilt, [ra])), outcome(() => openEnvelope(der, [{ certificatePem: ra.certificatePem, key: other.key }]))]) {
      if ('code' in o) expect(o.code).toBe('decrypt_failed');
      else expect(o.content).not.toContain('secret content');
    }
  });

  it('signs a SignedData that openssl verifies, with the caller\'s attributes; without content the digest is that of the empty string', () => {
    const attribute = { type: '2.16.840.1.113733.1.9.2', values: [Buffer.from(new asn1js.PrintableString({ value: '3' }).toBER(false))] };
    const signed = signAsRa({ content: Buffer.from('enveloped reply'), attributes: [attribute], certificatePem: ra.certificatePem, key: ra.key });
    fs.writeFileSync(file('signed.der'), signed);
    expect(openssl(['cms', '-verify', '-inform', 'DER', '-in', 'signed.der', '-CAfile', 'ra.pem', '-purpose', 'any', '-binary']).toString()).toBe('enveloped reply');
    expect(openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'signed.der']).toString()).toMatch(/2\.16\.840\.1\.113733\.1\.9\.2/);

    const empty = signAsRa({ content: null, attributes: [attribute], certificatePem: ra.certificatePem, key: ra.key });
    fs.writeFileSync(file('empty.der'), empty);
    fs.writeFileSync(file('nothing'), '');
    openssl(['cms', '-verify', '-inform', 'DER', '-in', 'empty.der', '-content', 'nothing', '-CAfile', 'ra.pem', '-purpose', 'any', '-binary']);
  });
});
