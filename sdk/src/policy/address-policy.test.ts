import { describe, expect, it } from 'vitest';
import { classifyAddress, clientAddressKey, normalizeAddress } from './address-policy.js';

describe('classifyAddress', () => {
  it('classifies the address ranges a plugin must not reach by accident', () => {
    const cases: [string, string][] = [
      ['8.8.8.8', 'public'], ['2606:4700::1111', 'public'],
      ['10.1.2.3', 'private'], ['172.20.0.1', 'private'], ['192.168.1.1', 'private'], ['100.64.0.1', 'private'], ['fd12:3456::1', 'private'],
      ['127.0.0.1', 'loopback'], ['127.8.9.10', 'loopback'], ['::1', 'loopback'],
      ['169.254.1.1', 'link-local'], ['fe80::1', 'link-local'],
      ['169.254.169.254', 'metadata'], ['fd00:ec2::254', 'metadata'], ['fd00:ec2:0::254', 'metadata'], ['100.100.100.200', 'metadata'], ['168.63.129.16', 'metadata'],
      ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
      ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'],
      ['255.255.255.255', 'broadcast'], ['240.0.0.1', 'reserved'],
      ['64:ff9b::a9fe:a9fe', 'reserved'], ['::a9fe:a9fe', 'reserved'],
    ];
    for (const [address, cls] of cases) expect(classifyAddress(address), address).toBe(cls);
  });

  it('sees through IPv4-mapped IPv6 addresses', () => {
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('[::FFFF:A9FE:A9FE]')).toBe('169.254.169.254');
    expect(classifyAddress('::ffff:169.254.169.254')).toBe('metadata');
    expect(classifyAddress('::ffff:7f00:1')).toBe('loopback');
  });

  it('throws on something that is not an IP address', () => {
    expect(() => classifyAddress('example.com')).toThrow(/not an IP address/);
  });
});

describe('clientAddressKey', () => {
  it('keeps IPv4 (also IPv4-mapped) and cuts IPv6 to its /64, however it is written', () => {
    expect(clientAddressKey('192.0.2.1')).toBe('192.0.2.1');
    expect(clientAddressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(clientAddressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(clientAddressKey('2001:0DB8:0001:0002:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(clientAddressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientAddressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(clientAddressKey('::1')).toBe('0:0:0:0::/64');
    // The hex-mapped form is the same IPv4 client, not a shared IPv6 /64.
    expect(clientAddressKey('::ffff:7f00:1')).toBe('127.0.0.1');
    expect(clientAddressKey('[2001:db8:1:2::1]')).toBe('2001:db8:1:2::/64');
  });
});
