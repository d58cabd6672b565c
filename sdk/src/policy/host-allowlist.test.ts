import { describe, expect, it } from 'vitest';
import { matchHostRule, parseHostRule, parseHostRules } from './host-allowlist.js';

const allowed = (entries: string[], url: string) => 'rule' in matchHostRule(parseHostRules(entries), new URL(url));

describe('http host rules', () => {
  it('parses the declared forms and rejects unusable ones', () => {
    expect(parseHostRule('CA.Example.com')).toMatchObject({ host: 'ca.example.com', wildcard: false, ip: false, port: null, allowHttp: false });
    expect(parseHostRule('*.example.com:8443')).toMatchObject({ host: 'example.com', wildcard: true, port: 8443 });
    expect(parseHostRule('http://10.0.0.5:8080')).toMatchObject({ host: '10.0.0.5', ip: true, port: 8080, allowHttp: true });
    expect(parseHostRule('https://ca.test/')).toMatchObject({ host: 'ca.test', allowHttp: false });
    expect(parseHostRule('[fd00::5]:8443')).toMatchObject({ host: 'fd00::5', ip: true, port: 8443 });
    for (const bad of ['', '*.com', '*', 'a b', 'ca.test/path', 'user@ca.test', 'ca.test:0', 'ca.test:70000', 'ftp://ca.test', '-bad.test', '[nope]']) {
      expect(parseHostRule(bad), bad).toBeNull();
    }
  });

  it('matches exact hosts on any port, https only unless declared http', () => {
    expect(allowed(['ca.test'], 'https://ca.test/x')).toBe(true);
    expect(allowed(['ca.test'], 'https://ca.test:9443/x')).toBe(true);
    expect(allowed(['ca.test'], 'http://ca.test/x')).toBe(false);
    expect(allowed(['http://ca.test'], 'http://ca.test/x')).toBe(true);
    expect(allowed(['http://ca.test'], 'https://ca.test/x')).toBe(true);
    expect(allowed(['ca.test'], 'https://ca.test./x')).toBe(true);
    expect(allowed(['ca.test'], 'https://evil-ca.test/')).toBe(false);
    expect(allowed(['ca.test'], 'https://ca.test.evil.test/')).toBe(false);
  });

  it('limits ports when one is declared (default ports count)', () => {
    expect(allowed(['ca.test:8443'], 'https://ca.test:8443/')).toBe(true);
    expect(allowed(['ca.test:8443'], 'https://ca.test/')).toBe(false);
    expect(allowed(['ca.test:443'], 'https://ca.test/')).toBe(true);
    expect(allowed(['http://ca.test:80'], 'http://ca.test/')).toBe(true);
  });

  it('wildcards cover subdomains at any depth but not the apex', () => {
    expect(allowed(['*.example.com'], 'https://a.example.com/')).toBe(true);
    expect(allowed(['*.example.com'], 'https://a.b.example.com/')).toBe(true);
    expect(allowed(['*.example.com'], 'https://example.com/')).toBe(false);
    expect(allowed(['*.example.com'], 'https://badexample.com/')).toBe(false);
  });

  it('matches IP literals, IPv6 in any spelling', () => {
    expect(allowed(['10.0.0.5'], 'https://10.0.0.5/')).toBe(true);
    expect(allowed(['[fd00::5]'], 'https://[fd00:0:0::5]/')).toBe(true);
    expect(allowed(['10.0.0.5'], 'https://10.0.0.6/')).toBe(false);
  });

  it('refuses other schemes and credentials in the URL, with a reason', () => {
    expect(matchHostRule(parseHostRules(['ca.test']), new URL('ftp://ca.test/'))).toEqual({ reason: 'scheme ftp: is not allowed (only https, or http where declared)' });
    expect(matchHostRule(parseHostRules(['ca.test']), new URL('https://u:p@ca.test/'))).toMatchObject({ reason: expect.stringContaining('credentials') });
    expect(matchHostRule(parseHostRules(['ca.test']), new URL('https://x.test/'))).toEqual({ reason: "host x.test is not among the plugin's granted hosts" });
  });
});
