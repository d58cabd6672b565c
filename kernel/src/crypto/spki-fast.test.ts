import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTestPki } from '../../../test/plugins/runtime/test-pki.js';
import { readVerifiedCsrFast, verifyCsrFast } from './csr-fast.js';
import { seq, tlv } from './der.js';
import { describePublicKey } from './public-key.js';
import { describeSpkiFast, publicKeyFromSpki } from './spki-fast.js';

const spkiOf = (key: crypto.KeyObject) => key.export({ format: 'der', type: 'spki' });

describe('SubjectPublicKeyInfo fast path', () => {
  const keys = {
    'EC P-256': crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
    'EC P-384': crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
    'EC P-521': crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey,
    'RSA 2048': crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
    'RSA 2049 (odd size)': crypto.generateKeyPairSync('rsa', { modulusLength: 2049 }).publicKey,
    Ed25519: crypto.generateKeyPairSync('ed25519').publicKey,
  };

  for (const [name, key] of Object.entries(keys)) {
    it(`describes ${name} as node does, and imports the same key`, async () => {
      const spki = spkiOf(key);
      expect(describeSpkiFast(spki)).toEqual(describePublicKey(key));
      expect(spkiOf(await publicKeyFromSpki(spki)).equals(spki)).toBe(true);
    });
  }

  it('leaves what it does not read to node (secp256k1, Ed448, compressed points)', async () => {
    const k1 = crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey;
    expect(describeSpkiFast(spkiOf(k1))).toBeNull();
    expect(describeSpkiFast(spkiOf(crypto.generateKeyPairSync('ed448').publicKey))).toBeNull();
    // The same key with its point compressed (33 bytes) imports through node's DER path.
    const full = spkiOf(keys['EC P-256']);
    const algorithmIdentifier = full.subarray(2, 2 + 2 + full[3]);
    const point = crypto.ECDH.convertKey(full.subarray(full.length - 65), 'prime256v1', undefined, undefined, 'compressed') as Buffer;
    const compressed = seq(algorithmIdentifier, tlv(0x03, Buffer.concat([Buffer.from([0]), point])));
    expect((await publicKeyFromSpki(compressed)).equals(keys['EC P-256'])).toBe(true);
  });

  it('refuses a point that is not on the curve, as node does, on every named curve', async () => {
    for (const name of ['EC P-256', 'EC P-384', 'EC P-521'] as const) {
      const spki = Buffer.from(spkiOf(keys[name]));
      spki[spki.length - 1] ^= 0x01;
      expect(() => crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' })).toThrow();
      await expect(publicKeyFromSpki(spki)).rejects.toThrow();
    }
  });

  it('reads a CSR it was told is verified exactly as the verifying reader does', async () => {
    const pki = makeTestPki();
    try {
      for (const key of ['ec', 'rsa', 'ed25519'] as const) {
        const csr = pki.csr(`r-${key}`, { key, sans: 'DNS:r.example.test,IP:192.0.2.1' });
        const verified = await verifyCsrFast(csr);
        expect(verified).not.toBeNull();
        expect(readVerifiedCsrFast(csr)).toEqual(verified);
      }
    } finally {
      pki.cleanup();
    }
  });
});
