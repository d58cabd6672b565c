import { describe, expect, it } from 'vitest';
import { Principal } from './principal.js';

const p = new Principal('key-1', 'user', 'key-1', 'scoped', [
  { permission: 'cert.read', scopeType: 'profile', scopeId: 'prof-a' },
  { permission: 'cert.read', scopeType: 'issuer', scopeId: 'iss-b' },
  { permission: 'audit.read', scopeType: 'global', scopeId: '' },
]);

describe('Principal scopes', () => {
  it('matches resources by profile or issuer', () => {
    expect(p.can('cert.read', { profile_id: 'prof-a' })).toBe(true);
    expect(p.can('cert.read', { issuer_id: 'iss-b', profile_id: 'prof-z' })).toBe(true);
    expect(p.can('cert.read', { profile_id: 'prof-z' })).toBe(false);
    expect(p.can('cert.read')).toBe(false);
    expect(p.can('audit.read')).toBe(true);
    expect(p.hasAny('cert.read')).toBe(true);
    expect(p.hasGlobal('cert.read')).toBe(false);
  });

  it('turns scoped grants into a list filter, and global into none', () => {
    expect(p.scopeFilter('cert.read')).toEqual({ profileIds: ['prof-a'], issuerIds: ['iss-b'] });
    expect(p.scopeFilter('audit.read')).toBeNull();
    expect(() => p.require('cert.read', { profile_id: 'prof-z' })).toThrow(/not granted/);
  });
});
