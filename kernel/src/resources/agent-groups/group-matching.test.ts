import { describe, expect, it } from 'vitest';
import { matchesAgent, parseCidr, type GroupCriteria } from './group-matching.js';

const none: GroupCriteria = { match_os: null, match_architecture: null, match_ip_cidr: null, match_version: null };
const agent = { os: 'Linux', architecture: 'amd64', ip_address: '10.1.2.3', version: '1.4.2' };

describe('agent group matching', () => {
  it('parses IPv4 and IPv6 CIDR blocks and refuses anything else', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'abc/8', '10.0.0.0/8/1', ' 10.0.0.0/8']) {
      expect(parseCidr(bad), bad).toBeNull();
    }
  });

  it('matches nobody without criteria', () => {
    expect(matchesAgent(none, agent)).toBe(false);
  });

  it('needs every set criterion to match', () => {
    expect(matchesAgent({ ...none, match_os: 'linux' }, agent)).toBe(true);
    expect(matchesAgent({ ...none, match_os: 'linux', match_architecture: 'arm64' }, agent)).toBe(false);
    expect(matchesAgent({ ...none, match_ip_cidr: '10.1.0.0/16' }, agent)).toBe(true);
    expect(matchesAgent({ ...none, match_ip_cidr: '10.2.0.0/16' }, agent)).toBe(false);
    expect(matchesAgent({ ...none, match_ip_cidr: 'fd00::/8' }, agent)).toBe(false);
    expect(matchesAgent({ ...none, match_ip_cidr: '10.0.0.0/8' }, { ...agent, ip_address: '' })).toBe(false);
    expect(matchesAgent({ ...none, match_version: '1.4.2' }, agent)).toBe(true);
    expect(matchesAgent({ ...none, match_version: '1.4.*' }, agent)).toBe(true);
    expect(matchesAgent({ ...none, match_version: '1.5.*' }, agent)).toBe(false);
    expect(matchesAgent({ ...none, match_version: '1.4' }, agent)).toBe(false);
  });
});
