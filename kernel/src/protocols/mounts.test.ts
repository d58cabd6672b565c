import { describe, expect, it } from 'vitest';
import type { PluginManifest } from '@certctl/sdk';
import type { PluginEntry } from '../plugins/catalog.js';
import { checkManifest } from '../plugins/manifest-check.js';
import { claimMounts, matchMount, mountClash } from './mounts.js';

const base = {
  apiVersion: 'certctl.plugin/v1', engines: { certctl: '>=0.0.0' }, runtimes: ['worker'], entry: { worker: 'dist/index.js' }, configSchema: { type: 'object' },
};
const protocol = (id: string, mounts: string[], extra: object = {}) => ({ ...base, id, kind: 'protocol', capabilities: { issuance: true }, protocol: { mounts }, ...extra });
const entry = (m: ReturnType<typeof protocol>, status: 'enabled' | 'disabled' = 'enabled') => ({ id: m.id, kind: 'protocol', status, manifest: m }) as unknown as PluginEntry;

describe('protocol manifests and mounts', () => {
  it('accepts mounts at or below the allowed roots', () => {
    for (const mounts of [['/acme'], ['/.well-known/est'], ['/scep', '/scep/intune'], ['/.well-known/cmp/p1']]) {
      expect(checkManifest(protocol('pp', mounts), '0.1.0').ok, mounts.join()).toBe(true);
    }
  });

  it('refuses the API, probes, PKI endpoints, traversal and odd paths as mounts', () => {
    for (const mount of ['/api', '/api/v1/acme', '/health', '/ready', '/.well-known/pki', '/.well-known/pki/crl', '/', '/acme/', '/acme/../api', '/ACME', '/acme/a b', 'acme']) {
      const r = checkManifest(protocol('pp', [mount]), '0.1.0');
      expect(r.ok, mount).toBe(false);
    }
  });

  it('requires the protocol block of protocol plugins, and keeps it and the issuance capability from other kinds', () => {
    expect(checkManifest({ ...base, id: 'pp', kind: 'protocol' }, '0.1.0').ok).toBe(false);
    expect(checkManifest({ ...base, id: 'ii', kind: 'issuer', protocol: { mounts: ['/acme'] } }, '0.1.0').ok).toBe(false);
    expect(checkManifest({ ...base, id: 'ii', kind: 'issuer', capabilities: { issuance: true } }, '0.1.0').ok).toBe(false);
    expect(checkManifest({ ...base, id: 'ii', kind: 'issuer', capabilities: { kv: true } }, '0.1.0').ok).toBe(true);
  });

  it('gives a mount to one plugin only', () => {
    const claimed = new Map<string, { id: string }>();
    const a = protocol('a', ['/acme']) as unknown as PluginManifest;
    expect(mountClash(a, claimed)).toBeNull();
    claimMounts(a, claimed);
    expect(mountClash(protocol('b', ['/scep', '/acme']) as unknown as PluginManifest, claimed)).toMatch(/mount \/acme is already served by plugin a/);
    expect(mountClash(protocol('c', ['/acme/internal']) as unknown as PluginManifest, claimed)).toBeNull();
    expect(mountClash(a, claimed)).toBeNull();
  });

  it('routes a path to the longest enabled mount at a segment boundary', () => {
    const plugins = [entry(protocol('acme', ['/acme'])), entry(protocol('internal', ['/acme/internal'])), entry(protocol('off', ['/scep']), 'disabled')];
    expect(matchMount(plugins, '/acme/directory')).toMatchObject({ mount: '/acme', rest: '/directory', plugin: { id: 'acme' } });
    expect(matchMount(plugins, '/acme')).toMatchObject({ mount: '/acme', rest: '' });
    expect(matchMount(plugins, '/acme/internal/directory')).toMatchObject({ mount: '/acme/internal', rest: '/directory', plugin: { id: 'internal' } });
    expect(matchMount(plugins, '/acme/internalx')).toMatchObject({ mount: '/acme', rest: '/internalx' });
    expect(matchMount(plugins, '/acmex')).toBeNull();
    expect(matchMount(plugins, '/scep')).toBeNull();
  });
});
