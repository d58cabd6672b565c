import { describe, expect, it } from 'vitest';
import { parseCaaIdentities } from './acme-caa.js';
import { parseResolvers } from './acme-resolve.js';
import { sniFor } from './acme-tlsalpn01.js';

describe('ACME validation inputs', () => {
  it('dnsResolvers: ip, ip:port and [ipv6]:port; never metadata, unspecified or multicast servers', () => {
    expect(parseResolvers(undefined)).toBeUndefined();
    expect(parseResolvers(['10.0.0.53', '127.0.0.1:8053', '[::1]:5353', 'fd00::53'])).toEqual(['10.0.0.53:53', '127.0.0.1:8053', '[::1]:5353', '[fd00::53]:53']);
    for (const bad of [[], ['a.example'], ['10.0.0.1:0'], ['10.0.0.1:70000'], ['169.254.169.254'], ['0.0.0.0:53'], ['224.0.0.251:5353'], ['[fd00:ec2::254]:53'], ['1.1.1.1', '1.0.0.1', '8.8.8.8', '8.8.4.4', '9.9.9.9'], 'not-a-list']) {
      expect(parseResolvers(bad as never), JSON.stringify(bad)).toHaveProperty('problem');
    }
  });
  it('caaIdentities: domain names, lower-cased', () => {
    expect(parseCaaIdentities(['PKI.Example.com'])).toEqual(['pki.example.com']);
    for (const bad of [[], ['not a name'], [1], 'x']) expect(parseCaaIdentities(bad as never)).toHaveProperty('problem');
  });
  it('tls-alpn-01 SNI: the name, or the reverse-mapping name of an IP (RFC 8738 6)', () => {
    expect(sniFor('app.example.test')).toBe('app.example.test');
    expect(sniFor('192.0.2.1')).toBe('1.2.0.192.in-addr.arpa');
    expect(sniFor('2001:db8::1')).toBe(`1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa`);
  });
});
