import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { constrainedNames, encodeNameConstraints, emptySubtrees, parseNameConstraints, violation, type NameConstraints } from './name-constraints.js';

const nc = (permitted: Partial<NameConstraints['permitted']>, excluded: Partial<NameConstraints['excluded']> = {}): NameConstraints =>
  ({ permitted: { ...emptySubtrees(), ...permitted }, excluded: { ...emptySubtrees(), ...excluded } });
const check = (c: NameConstraints, sans: string[], cn: string[] = []) => constrainedNames(sans, cn).map((n) => violation(c, n)).find((v) => v !== null) ?? null;

describe('name constraints (RFC 5280 4.2.1.10)', () => {
  it('DNS: a base permits itself and names below it; a leading dot only names below it; labels, not suffixes', () => {
    const c = nc({ dns: ['example.com', '.corp.test'] });
    for (const ok of ['example.com', 'a.example.com', 'a.b.EXAMPLE.com.', 'x.corp.test', '*.example.com']) expect(check(c, [ok]), ok).toBeNull();
    for (const bad of ['corp.test', 'badexample.com', 'example.com.evil', 'other.test']) expect(check(c, [bad]), bad).toMatch(/outside the permitted/);
  });

  it('DNS excluded subtrees win, and a wildcard is refused when any name it covers is excluded', () => {
    const c = nc({ dns: ['example.com'] }, { dns: ['secret.example.com'] });
    expect(check(c, ['secret.example.com'])).toMatch(/excluded subtree dns:secret\.example\.com/);
    expect(check(c, ['x.secret.example.com'])).toMatch(/excluded/);
    expect(check(c, ['*.example.com'])).toMatch(/excluded/);
    expect(check(c, ['*.secret.example.com'])).toMatch(/excluded/);
    expect(check(c, ['*.pub.example.com'])).toBeNull();
    expect(check(c, ['public.example.com'])).toBeNull();
    // `.secret.example.com` excludes only names below secret.example.com, none of which *.example.com covers.
    const dot = nc({ dns: ['example.com'] }, { dns: ['.secret.example.com'] });
    expect(check(dot, ['*.example.com'])).toBeNull();
    expect(check(dot, ['secret.example.com'])).toBeNull();
    expect(check(dot, ['*.secret.example.com'])).toMatch(/excluded/);
  });

  it('email: the local part is case-sensitive and kept as given, the host is not; subject emailAddress attributes count', () => {
    const parsed = parseNameConstraints({ permitted: { email: ['Ops@Example.COM', 'MAIL.test'] } });
    expect(parsed).toEqual({ ok: true, value: nc({ email: ['Ops@example.com', 'mail.test'] }) });
    const c = (parsed as { value: NameConstraints }).value;
    expect(check(c, ['Ops@EXAMPLE.com', 'x@Mail.Test'])).toBeNull();
    expect(check(c, ['ops@example.com'])).toMatch(/outside/);
    expect(constrainedNames([], [], ['mallory@evil.test']).map((n) => violation(c, n))[0]).toMatch(/subject emailAddress mallory@evil\.test is outside/);
    expect(constrainedNames([], [], ['Ops@example.com']).map((n) => violation(c, n))).toEqual([null]);
  });

  it('IP ranges by family; email by mailbox, host or domain; the CN counts when it is a host name or address', () => {
    const c = nc({ ip: ['10.0.0.0/8', '2001:db8::/32'], email: ['ops@example.com', 'mail.test', '.corp.test'], dns: ['example.com'] });
    expect(check(c, ['10.200.3.4', '2001:db8:1::5'])).toBeNull();
    expect(check(c, ['11.0.0.1'])).toMatch(/11\.0\.0\.1 is outside/);
    expect(check(c, ['2001:db9::1'])).toMatch(/outside/);
    expect(check(c, ['::ffff:10.0.0.1'])).toMatch(/outside/);
    expect(check(c, ['ops@example.com', 'anyone@mail.test', 'x@a.corp.test'])).toBeNull();
    expect(check(c, ['dev@example.com'])).toMatch(/outside/);
    expect(check(c, ['x@corp.test'])).toMatch(/outside/);
    expect(check(c, [], ['www.other.test'])).toMatch(/subject CN www\.other\.test/);
    expect(check(c, [], ['Alice Example'])).toBeNull();
    expect(check(c, [], ['192.168.0.1'])).toMatch(/outside/);
    // Types without permitted subtrees are not constrained; URIs are never checked here.
    expect(check(nc({ dns: ['example.com'] }), ['10.0.0.1', 'https://x.other.test/'])).toBeNull();
  });

  it('parses and normalises the API form, refusing what is not a subtree', () => {
    const ok = parseNameConstraints({ permitted: { dns: ['Example.COM.'], ip: ['10.1.2.3/8', '2001:DB8::/32'] }, excluded: { email: ['.corp.test'] } });
    expect(ok).toEqual({ ok: true, value: nc({ dns: ['example.com'], ip: ['10.0.0.0/8', '2001:db8::/32'] }, { email: ['.corp.test'] }) });
    for (const bad of [[], { permitted: { uri: ['x'] } }, { permitted: { dns: ['a b'] } }, { excluded: { ip: ['10.0.0.0'] } }, { excluded: { ip: ['10.0.0.0/33'] } }, { permitted: { email: ['@x'] } }, { other: {} }]) {
      expect(parseNameConstraints(bad).ok, JSON.stringify(bad)).toBe(false);
    }
  });

  it('encodes DER that openssl reads back', () => {
    const der = encodeNameConstraints(nc({ dns: ['example.com'], ip: ['10.0.0.0/8'], email: ['example.com'] }, { dns: ['bad.example.com'], ip: ['2001:db8::/32'] }));
    const text = execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der }).toString();
    expect(text).toContain('cont [ 0 ]');
    expect(text).toContain('cont [ 1 ]');
    expect(text.match(/cont \[ 2 \]/g)).toHaveLength(2);
    expect(text.match(/cont \[ 7 \]/g)).toHaveLength(2);
  });
});
