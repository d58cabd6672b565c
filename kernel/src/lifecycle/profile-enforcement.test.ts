import { describe, expect, it } from 'vitest';
import type { CsrInfo } from '../crypto/crypto-types.js';
import { certificateSans, normaliseName, subjectCommonName } from './issuance-names.js';
import { enforceProfile, type ProfileRules } from './profile-enforcement.js';

const now = new Date('2026-01-01T00:00:00Z');
const HOUR = 3_600_000;

const csr = (over: Partial<CsrInfo> = {}): CsrInfo => ({
  valid: true, subject: 'CN=app.example.com', sans: ['app.example.com'], publicKeyAlgorithm: 'EC', keySize: 256, namedCurve: 'P-256', signatureAlgorithm: 'ecdsa-with-SHA256', ...over,
});
const profile = (over: Partial<ProfileRules> = {}): ProfileRules => ({
  id: 'prof-t', enabled: true, allowed_key_algorithms: [], max_ttl_seconds: null, allowed_ekus: ['serverAuth'], required_san_patterns: [], ...over,
});
const cert = (common_name = 'app.example.com', sans: string[] = []) => ({ common_name, sans });

const problems = (p: ProfileRules | null, c: CsrInfo, names = cert(), opts: Partial<Parameters<typeof enforceProfile>[3]> = {}) => {
  const r = enforceProfile(p, c, names, { now, ...opts });
  return r.ok ? [] : r.problems;
};
const plan = (p: ProfileRules | null, c: CsrInfo, names = cert(), opts: Partial<Parameters<typeof enforceProfile>[3]> = {}) => {
  const r = enforceProfile(p, c, names, { now, ...opts });
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.plan;
};

describe('profile enforcement', () => {
  it('accepts a matching CSR and plans the issuance from the certificate', () => {
    expect(plan(profile(), csr({ sans: ['WWW.example.com'] }), cert('APP.example.com', ['www.example.com'])).sans).toEqual(['app.example.com', 'www.example.com']);
    expect(plan(profile(), csr({ sans: ['app.example.com', 'www.example.com'] }), cert('app.example.com', ['www.example.com']))).toEqual({
      keyAlgorithm: 'ECDSA', keySize: 256, sans: ['app.example.com', 'www.example.com'], ekus: ['serverAuth'], notAfter: null, ttlCapped: false, maxTtlSeconds: null,
    });
  });

  it('refuses a disabled profile and an invalid CSR', () => {
    expect(problems(profile({ enabled: false }), csr())).toEqual(['profile prof-t is disabled']);
    expect(problems(null, csr({ valid: false, reason: 'bad signature' }))).toEqual(['the CSR is not valid: bad signature']);
  });

  it.each([
    [[{ algorithm: 'ECDSA', min_size: 256 }], { publicKeyAlgorithm: 'RSA', keySize: 4096 }, /key type RSA is not allowed by profile prof-t \(allowed: ECDSA >= 256\)/],
    [[{ algorithm: 'ECDSA', min_size: 384 }], {}, /key ECDSA 256 is below profile prof-t's minimum of 384/],
    [[{ algorithm: 'RSA', min_size: 3072 }], { publicKeyAlgorithm: 'RSA', keySize: 2048 }, /below profile prof-t's minimum of 3072/],
    [[], { publicKeyAlgorithm: 'RSA', keySize: 1024 }, /RSA key has 1024 bits; at least 2048/],
    [[], { publicKeyAlgorithm: 'EC', keySize: 224, namedCurve: 'P-224' }, /not on P-256, P-384 or P-521/],
    [[], { publicKeyAlgorithm: 'Ed448', keySize: 456 }, /key type Ed448 is not supported/],
  ])('key rules %j: refuses %j', (rules, key, message) => {
    expect(problems(profile({ allowed_key_algorithms: rules }), csr(key as Partial<CsrInfo>)).join('; ')).toMatch(message);
  });

  it('accepts stronger keys than the minimum, and any supported key without rules', () => {
    expect(plan(profile({ allowed_key_algorithms: [{ algorithm: 'ECDSA', min_size: 256 }] }), csr({ keySize: 384, namedCurve: 'P-384' })).keySize).toBe(384);
    expect(plan(null, csr({ publicKeyAlgorithm: 'Ed25519', keySize: 256 })).keyAlgorithm).toBe('Ed25519');
    expect(plan(profile({ allowed_key_algorithms: [{ algorithm: 'RSA', min_size: 2048 }, { algorithm: 'Ed25519' }] }), csr({ publicKeyAlgorithm: 'RSA', keySize: 3072 })).keyAlgorithm).toBe('RSA');
  });

  it('requires the CSR to ask for exactly the certificate\'s names', () => {
    expect(problems(null, csr({ sans: ['app.example.com', 'evil.example.net'] }))).toEqual(['the CSR asks for names the certificate does not have: evil.example.net']);
    expect(problems(null, csr({ sans: [] }), cert('app.example.com', ['api.example.com']))).toEqual(['the CSR leaves out names of the certificate: api.example.com']);
    expect(problems(null, csr({ subject: 'CN=other.example.com', sans: ['app.example.com'] })).join('; ')).toMatch(/CN "other.example.com" is not the certificate's common name/);
    expect(problems(null, csr({ subject: 'O=Acme', sans: [] }))).toContain('the CSR names nothing (no CN, no SANs)');
    // No CN but the right SANs, and the CN repeated or not: all the same request.
    expect(problems(null, csr({ subject: '', sans: ['app.example.com'] }))).toEqual([]);
    expect(problems(null, csr({ sans: [] }))).toEqual([]);
    expect(problems(null, csr({ sans: ['2001:db8:0:0:0:0:0:1'] }), cert('app.example.com', ['2001:db8::1']))).toEqual([]);
  });

  it('a free-text common name is matched as the CN only, never issued as a SAN', () => {
    expect(plan(null, csr({ subject: 'CN=Payments Service', sans: ['pay.example.com'] }), cert('Payments Service', ['pay.example.com'])).sans).toEqual(['pay.example.com']);
    expect(plan(null, csr({ subject: 'CN=Payments Service', sans: ['Payments Service', 'pay.example.com'] }), cert('Payments Service', ['pay.example.com'])).sans).toEqual(['pay.example.com']);
  });

  it('checks every name against required_san_patterns', () => {
    const p = profile({ required_san_patterns: ['^[a-z]+\\.example\\.com$'] });
    expect(problems(p, csr())).toEqual([]);
    expect(problems(p, csr({ sans: ['app.example.com', 'x.example.org'] }), cert('app.example.com', ['x.example.org']))).toEqual(["name(s) x.example.org match none of profile prof-t's required SAN patterns"]);
  });

  it('plans EKUs from the profile; e-mail SANs need emailProtection', () => {
    const mixed = profile({ allowed_ekus: ['serverAuth', 'clientAuth', 'emailProtection'] });
    expect(plan(mixed, csr()).ekus).toEqual(['serverAuth', 'clientAuth']);
    const email = { subject: 'CN=alice@example.com', sans: ['alice@example.com'] };
    expect(plan(mixed, csr(email), cert('alice@example.com')).ekus).toEqual(['serverAuth', 'clientAuth', 'emailProtection']);
    expect(plan(profile({ allowed_ekus: ['emailProtection'] }), csr(email), cert('alice@example.com')).ekus).toEqual(['emailProtection']);
    expect(problems(profile(), csr(email), cert('alice@example.com'))).toEqual(['e-mail SANs need the emailProtection EKU, which profile prof-t does not allow']);
    expect(plan(null, csr(email), cert('alice@example.com')).ekus).toEqual(['serverAuth', 'emailProtection']);
    expect(plan(mixed, csr(), cert(), { requestedEkus: ['clientAuth'] }).ekus).toEqual(['clientAuth']);
    expect(problems(mixed, csr(), cert(), { requestedEkus: ['codeSigning'] })).toEqual(['EKU codeSigning is not allowed by profile prof-t (allowed: serverAuth, clientAuth, emailProtection)']);
  });

  it('caps a requested notAfter at max_ttl_seconds and refuses one in the past', () => {
    const day = profile({ max_ttl_seconds: 86_400 });
    expect(plan(day, csr(), cert(), { requestedNotAfter: new Date(now.getTime() + 48 * HOUR) })).toMatchObject({ notAfter: new Date(now.getTime() + 24 * HOUR), ttlCapped: true, maxTtlSeconds: 86_400 });
    expect(plan(day, csr(), cert(), { requestedNotAfter: new Date(now.getTime() + HOUR) })).toMatchObject({ notAfter: new Date(now.getTime() + HOUR), ttlCapped: false });
    expect(plan(day, csr())).toMatchObject({ notAfter: null, maxTtlSeconds: 86_400 });
    expect(problems(day, csr(), cert(), { requestedNotAfter: new Date(now.getTime() - 1) }).join()).toMatch(/is not in the future/);
  });

  it('reports every problem at once', () => {
    const p = profile({ allowed_key_algorithms: [{ algorithm: 'ECDSA', min_size: 384 }], required_san_patterns: ['^nope$'] });
    expect(problems(p, csr({ sans: ['app.example.com', 'x.example.net'] }))).toHaveLength(3);
  });
});

describe('issuance names', () => {
  it('reads the CN of a subject, escapes included', () => {
    expect(subjectCommonName('CN=app.example.com, O=Acme')).toBe('app.example.com');
    expect(subjectCommonName('O=Acme, CN=Smith\\, John')).toBe('Smith, John');
    expect(subjectCommonName('O=Acme')).toBeNull();
  });

  it('issues the CN first, then the SANs, once each, normalised', () => {
    expect(certificateSans(cert('App.Example.com', ['app.example.com', 'B.example.com', '2001:DB8:0:0:0:0:0:1']))).toEqual(['app.example.com', 'b.example.com', '2001:db8::1']);
    expect(normaliseName(' Alice@Example.COM ')).toBe('alice@example.com');
  });
});
