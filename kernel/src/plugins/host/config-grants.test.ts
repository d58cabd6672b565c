import { describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import { matchHostRule, parseHostRules } from '@certctl/sdk/policy';
import { ConfigGrantsBroker, configDerivedHosts, configUrls, originRule, withDerivedHosts } from './config-grants.js';
import type { BrokerCallContext, BrokerOp, CapabilityBroker } from './contracts.js';

const schema = {
  type: 'object',
  properties: {
    url: { type: 'string', 'x-certctl-url': true },
    secret_url: { type: 'string', writeOnly: true, 'x-certctl-url': true },
    plain: { type: 'string' },
    mirrors: { type: 'array', items: { type: 'string', 'x-certctl-url': true } },
    nested: { type: 'object', properties: { api: { type: 'string', 'x-certctl-url': true } } },
  },
} as const;

describe('config-derived http hosts', () => {
  it('collects marked fields only, nested objects and arrays included', () => {
    const urls = configUrls(schema, {
      url: 'https://hooks.example.test/a', secret_url: 'https://secret.example.test/s', plain: 'https://not-a-grant.test/',
      mirrors: ['http://127.0.0.1:9000/x', 7], nested: { api: 'https://api.example.test:8443/v2' },
    });
    expect(urls).toEqual(['https://hooks.example.test/a', 'https://secret.example.test/s', 'http://127.0.0.1:9000/x', 'https://api.example.test:8443/v2']);
  });

  it('turns a URL into its origin: scheme, exact host and port', () => {
    expect(originRule('https://hooks.slack.com/services/T0/B0/xyz')).toBe('hooks.slack.com:443');
    expect(originRule('http://127.0.0.1:8080/hook')).toBe('http://127.0.0.1:8080');
    expect(originRule('http://localhost/hook')).toBe('http://localhost:80');
    expect(originRule('https://[::1]:9443/x')).toBe('[::1]:9443');
    expect(originRule('https://events.pagerduty.com')).toBe('events.pagerduty.com:443');
  });

  it('grants nothing for cloud metadata, unspecified addresses, other schemes, credentials or junk', () => {
    for (const bad of ['http://169.254.169.254/latest/meta-data', 'http://[fd00:ec2::254]/', 'http://100.100.100.200/', 'http://168.63.129.16/',
      'http://0.0.0.0:8080/', 'http://[::ffff:169.254.169.254]/', 'ftp://files.test/', 'file:///etc/passwd', 'https://user:pw@hooks.test/', 'not a url', '']) {
      expect(originRule(bad), bad).toBeNull();
    }
  });

  it('derives distinct rules that the fetch policy accepts for that origin only', () => {
    const hosts = configDerivedHosts(schema, { url: 'http://127.0.0.1:8080/a', secret_url: 'http://127.0.0.1:8080/b', nested: { api: 'https://api.example.test/v2' } });
    expect(hosts).toEqual(['http://127.0.0.1:8080', 'api.example.test:443']);
    const rules = parseHostRules(hosts);
    expect(rules).toHaveLength(2);
    const ok = (u: string) => 'rule' in matchHostRule(rules, new URL(u));
    expect(ok('http://127.0.0.1:8080/other/path')).toBe(true);
    expect(ok('http://127.0.0.1:8081/')).toBe(false);
    expect(ok('https://api.example.test/v2/alerts')).toBe(true);
    expect(ok('http://api.example.test/v2/alerts')).toBe(false);
    expect(ok('https://evil.example.test/')).toBe(false);
    // Exact (non-wildcard) rules: loopback is reachable because the operator named it.
    expect(rules.every((r) => !r.wildcard)).toBe(true);
  });

  it('adds derived hosts to the granted ones, and never grants http to a plugin without it', () => {
    expect(withDerivedHosts({ kv: true }, [])).toEqual({ kv: true });
    expect(withDerivedHosts({ kv: true }, ['http://127.0.0.1:5432'])).toEqual({ kv: true });
    expect(withDerivedHosts({ http: { hosts: [] } }, ['hooks.test:443'])).toEqual({ http: { hosts: ['hooks.test:443'] } });
    expect(withDerivedHosts({ kv: true, http: { hosts: ['a.test'] } }, ['b.test:443', 'a.test'])).toEqual({ kv: true, http: { hosts: ['a.test', 'b.test:443'] } });
  });

  it('widens http.fetch of calls for that instance only', async () => {
    const seen: BrokerCallContext[] = [];
    const inner: CapabilityBroker = { handle: async (ctx) => { seen.push(ctx); return null; } };
    const broker = new ConfigGrantsBroker(inner);
    broker.setInstanceHosts('webhook', 'ntf-1', ['http://127.0.0.1:8080']);
    const ctx = (instanceId: string | null): BrokerCallContext => ({ pluginId: 'webhook', instanceId, grants: { http: { hosts: [] } }, deadline: Date.now() + 1000 });
    const fetchOp: BrokerOp = { op: 'http.fetch', request: { url: 'http://127.0.0.1:8080/' } as Json };
    const c1 = ctx('ntf-1');
    await broker.handle(c1, fetchOp);
    await broker.handle(c1, fetchOp);
    await broker.handle(ctx('ntf-2'), fetchOp);
    await broker.handle(ctx(null), fetchOp);
    await broker.handle(c1, { op: 'kv.get', key: 'k' });
    expect(seen.map((c) => c.grants.http?.hosts ?? null)).toEqual([['http://127.0.0.1:8080'], ['http://127.0.0.1:8080'], [], [], []]);
    expect(seen[0]).toBe(seen[1]);
    broker.setInstanceHosts('webhook', 'ntf-1', []);
    await broker.handle(ctx('ntf-1'), fetchOp);
    expect(seen.at(-1)?.grants.http).toEqual({ hosts: [] });
  });
});
