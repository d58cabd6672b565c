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
});
