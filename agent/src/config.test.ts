import { describe, expect, it } from 'vitest';
import { loadAgentConfig, normalizeSha256 } from './config.js';

describe('agent config', () => {
  it('has the documented defaults', () => {
    const c = loadAgentConfig({ CERTCTL_AGENT_BOOTSTRAP_TOKEN: 'x'.repeat(20) });
    expect(c).toMatchObject({ serverUrl: 'https://localhost:8443', keyDir: '/var/lib/certctl/keys', stateDir: '/var/lib/certctl/agent', verifyDelayMs: 2000, discoveryIntervalMs: 6 * 3600_000, trust: { mode: 'system' }, allowedCommands: [] });
    expect(c.allowedPaths).toEqual(expect.arrayContaining(['/etc/ssl', '/etc/pki', '/etc/nginx', '/var/lib/certctl']));
  });

  it('is HTTPS only and never turns verification off', () => {
    expect(() => loadAgentConfig({ CERTCTL_SERVER_URL: 'http://cp.example:8443' })).toThrow(/must be an https/);
    expect(loadAgentConfig({ CERTCTL_SERVER_CA_FILE: '/etc/certctl/ca.pem' }).trust).toEqual({ mode: 'ca-file', caFile: '/etc/certctl/ca.pem' });
    const pin = 'AB:'.repeat(31) + 'AB';
    expect(loadAgentConfig({ CERTCTL_SERVER_CERT_SHA256: pin }).trust).toEqual({ mode: 'pinned', sha256: 'ab'.repeat(32) });
    expect(() => loadAgentConfig({ CERTCTL_SERVER_CERT_SHA256: 'abc' })).toThrow(/SHA-256/);
    expect(() => loadAgentConfig({ CERTCTL_SERVER_CERT_SHA256: pin, CERTCTL_SERVER_CA_FILE: '/x' })).toThrow(/not both/);
    expect(normalizeSha256('sha256:' + 'F'.repeat(64))).toBe('f'.repeat(64));
  });

  it('checks every value and names the variable', () => {
    expect(() => loadAgentConfig({ CERTCTL_KEY_DIR: 'keys' })).toThrow(/CERTCTL_KEY_DIR: .*not absolute/);
    expect(() => loadAgentConfig({ CERTCTL_VERIFY_DELAY: 'soon' })).toThrow(/CERTCTL_VERIFY_DELAY/);
    expect(() => loadAgentConfig({ CERTCTL_API_KEY: 'k' })).toThrow(/needs CERTCTL_AGENT_ID/);
    expect(() => loadAgentConfig({ CERTCTL_AGENT_ID: 'Bad Id' })).toThrow(/CERTCTL_AGENT_ID/);
    expect(() => loadAgentConfig({ CERTCTL_DISCOVERY_DIRS: '/etc/ssl,certs' })).toThrow(/CERTCTL_DISCOVERY_DIRS/);
    expect(() => loadAgentConfig({ CERTCTL_AGENT_ALLOWED_COMMANDS: '/bin/sh -c' })).toThrow(/CERTCTL_AGENT_ALLOWED_COMMANDS/);
    expect(loadAgentConfig({ CERTCTL_DISCOVERY_DIRS: '/etc/ssl, /srv/certs', CERTCTL_AGENT_ALLOWED_PATHS: '/etc/ssl' })).toMatchObject({ discoveryDirs: ['/etc/ssl', '/srv/certs'], allowedPaths: ['/etc/ssl'] });
  });
});
