import { describe, expect, it } from 'vitest';
import { loadConfig, parseDuration } from './config.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500], ['30s', 30_000], ['5m', 300_000], ['1h', 3_600_000], ['1h30m', 5_400_000], ['2d', 172_800_000], ['45', 45_000], ['0.5', 500],
  ])('%s -> %i ms', (input, ms) => expect(parseDuration(input, 'X')).toBe(ms));

  it.each(['', 'soon', '5 m', '1x', 'm5', '-1s', '1h-'])('refuses %j', (input) => {
    expect(() => parseDuration(input, 'CERTCTL_X')).toThrow(/CERTCTL_X/);
  });
});

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      serverPort: 8443, maxBodySize: 1_048_576, corsOrigins: [], authType: 'api-key', keygenMode: 'agent',
      rateLimit: { enabled: true, rps: 50, burst: 100 },
    });
    expect(c.intervals.renewalCheckMs).toBe(3_600_000);
    expect(c.dataDir).toMatch(/\/data$/);
  });

  it('reads and checks values', () => {
    const c = loadConfig({ CERTCTL_SERVER_PORT: '9000', CERTCTL_CORS_ORIGINS: 'https://a.example, https://b.example', CERTCTL_RATE_LIMIT_ENABLED: 'false' });
    expect(c.serverPort).toBe(9000);
    expect(c.corsOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(c.rateLimit.enabled).toBe(false);
    expect(() => loadConfig({ CERTCTL_SERVER_PORT: '70000' })).toThrow(/outside/);
    expect(() => loadConfig({ CERTCTL_RATE_LIMIT_ENABLED: 'maybe' })).toThrow(/not true or false/);
    expect(() => loadConfig({ CERTCTL_BOOTSTRAP_TOKEN: 'short' })).toThrow(/at least 16/);
    expect(() => loadConfig({ CERTCTL_KEYGEN_MODE: 'hsm' })).toThrow(/agent, server/);
    expect(() => loadConfig({ CERTCTL_PUBLIC_BASE_URL: 'not a url' })).toThrow(/not a URL/);
  });
});
