import { describe, expect, it } from 'vitest';
import { capabilityItems, narrowGrant, newRequests, normalizeCapabilities, notRequested, selectCapabilities } from './capabilities.js';

const requested = { http: { hosts: ['ca.example.com', '*.ocsp.example.com:8443'] }, kv: true, events: false, fs: { paths: ['/etc/ssl/certctl'] } };

describe('capability grants', () => {
  it('flattens and canonicalises capability sets', () => {
    expect(capabilityItems(requested)).toEqual(['fs:/etc/ssl/certctl', 'http:*.ocsp.example.com:8443', 'http:ca.example.com', 'kv']);
    expect(normalizeCapabilities({ http: { hosts: [] }, kv: false, events: true })).toEqual({ events: true });
    expect(normalizeCapabilities(null)).toEqual({});
  });

  it('names whatever a grant adds beyond the request', () => {
    expect(notRequested(requested, { http: { hosts: ['ca.example.com'] }, kv: true })).toEqual([]);
    expect(notRequested(requested, { http: { hosts: ['evil.example.net'] }, events: true, exec: { commands: ['sh'] } })).toEqual(['events', 'exec:sh', 'http:evil.example.net']);
  });

  it('narrows a grant to a new request and finds what is newly asked for', () => {
    const granted = { http: { hosts: ['ca.example.com', '*.ocsp.example.com:8443'] }, kv: true };
    const next = { http: { hosts: ['ca.example.com', 'ra.example.com'] } };
    expect(narrowGrant(granted, next)).toEqual({ http: { hosts: ['ca.example.com'] } });
    expect(newRequests(requested, next)).toEqual(['http:ra.example.com']);
    expect(newRequests(requested, { kv: true })).toEqual([]);
  });

  it('selects requested capabilities by name for the CLI', () => {
    expect(selectCapabilities(requested, ['http'])).toEqual({ http: { hosts: ['*.ocsp.example.com:8443', 'ca.example.com'] } });
    expect(selectCapabilities(requested, ['kv', 'fs'])).toEqual({ kv: true, fs: { paths: ['/etc/ssl/certctl'] } });
    expect(() => selectCapabilities(requested, ['exec'])).toThrow(/does not ask for "exec"/);
    expect(() => selectCapabilities(requested, ['shell'])).toThrow(/unknown capability "shell"/);
  });

  it('keeps the argument lists of exec commands in the items, so a grant names what the plugin will run', () => {
    const asked = {
      exec: {
        commands: ['/usr/sbin/nginx', '/usr/bin/caddy', '/usr/bin/tool'],
        args: { '/usr/sbin/nginx': [['-t'], ['-s', 'reload']], '/usr/bin/caddy': [], '/usr/bin/tool': [['-f', { regex: '/[^ ]*' }]] },
      },
    };
    expect(capabilityItems(asked)).toEqual([
      'exec:/usr/bin/caddy listed',
      'exec:/usr/bin/tool ["-f",{"regex":"/[^ ]*"}]',
      'exec:/usr/bin/tool listed',
      'exec:/usr/sbin/nginx ["-s","reload"]',
      'exec:/usr/sbin/nginx ["-t"]',
      'exec:/usr/sbin/nginx listed',
    ]);
    // The round trip keeps every list (a command with an empty list of lists stays: it runs only as configured).
    expect(normalizeCapabilities(asked)).toEqual({
      exec: {
        commands: ['/usr/bin/caddy', '/usr/bin/tool', '/usr/sbin/nginx'],
        args: { '/usr/bin/caddy': [], '/usr/bin/tool': [['-f', { regex: '/[^ ]*' }]], '/usr/sbin/nginx': [['-s', 'reload'], ['-t']] },
      },
    });
    // A command without lists is granted with any arguments, and a grant of it is more than a request with lists.
    expect(normalizeCapabilities({ exec: { commands: ['/usr/sbin/nginx'] } })).toEqual({ exec: { commands: ['/usr/sbin/nginx'] } });
    expect(notRequested(asked, { exec: { commands: ['/usr/sbin/nginx'] } })).toEqual(['exec:/usr/sbin/nginx']);
    // Other arguments, or a pattern widened, are not requested; a subset of the lists is a valid grant.
    expect(notRequested(asked, { exec: { commands: ['/usr/sbin/nginx'], args: { '/usr/sbin/nginx': [['-s', 'stop']] } } })).toEqual(['exec:/usr/sbin/nginx ["-s","stop"]']);
    expect(notRequested(asked, { exec: { commands: ['/usr/bin/tool'], args: { '/usr/bin/tool': [['-f', { regex: '.*' }]] } } })).toEqual(['exec:/usr/bin/tool ["-f",{"regex":".*"}]']);
    expect(notRequested(asked, { exec: { commands: ['/usr/sbin/nginx'], args: { '/usr/sbin/nginx': [['-t']] } } })).toEqual([]);
    // An upgrade that adds an argument list asks again, and the kept grant keeps only lists still asked for.
    const next = { exec: { commands: ['/usr/sbin/nginx'], args: { '/usr/sbin/nginx': [['-t'], ['-s', 'reopen']] } } };
    expect(newRequests(asked, next)).toEqual(['exec:/usr/sbin/nginx ["-s","reopen"]']);
    expect(narrowGrant(asked, next)).toEqual({ exec: { commands: ['/usr/sbin/nginx'], args: { '/usr/sbin/nginx': [['-t']] } } });
    expect(selectCapabilities(asked, ['exec'])).toEqual(normalizeCapabilities(asked));
  });
});
