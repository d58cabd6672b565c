import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigCipher, mergeSecrets, secretPaths, splitSecrets } from './config-cipher.js';

describe('ConfigCipher', () => {
  const cipher = ConfigCipher.fromKey(crypto.randomBytes(32));

  it('round-trips and uses a fresh nonce each time', () => {
    const a = cipher.encrypt('s3cret');
    const b = cipher.encrypt('s3cret');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^v1:/);
    expect(cipher.decrypt(a)).toBe('s3cret');
  });

  it('detects tampering and the wrong key', () => {
    const sealed = cipher.encrypt('payload');
    const [v, iv, data] = sealed.split(':');
    const bytes = Buffer.from(data, 'base64');
    bytes[0] ^= 1;
    expect(() => cipher.decrypt([v, iv, bytes.toString('base64')].join(':'))).toThrow();
    expect(() => ConfigCipher.fromKey(crypto.randomBytes(32)).decrypt(sealed)).toThrow();
    expect(() => cipher.decrypt('v2:abc:def')).toThrow(/format/);
  });
});

describe('secret splitting by schema', () => {
  const schema = {
    type: 'object',
    properties: {
      url: { type: 'string' },
      token: { type: 'string', writeOnly: true },
      auth: { type: 'object', properties: { user: { type: 'string' }, password: { type: 'string', 'x-secret': true } } },
    },
  };

  it('keeps secrets out of the plain part, nested ones included, and merges back', () => {
    const config = { url: 'https://ca', token: 't0k', auth: { user: 'u', password: 'p' } };
    const { plain, secret } = splitSecrets(schema, config);
    expect(plain).toEqual({ url: 'https://ca', auth: { user: 'u' } });
    expect(secret).toEqual({ token: 't0k', auth: { password: 'p' } });
    expect(secretPaths(secret).sort()).toEqual(['auth.password', 'token']);
    expect(mergeSecrets(plain, secret)).toEqual(config);
  });
});
