import { describe, expect, it } from 'vitest';
// The kernel's own rules, to prove the test host enforces the same ones.
import { classifyAddress as kernelClassify } from '../../../kernel/src/plugins/broker/address-policy.js';
import { matchHostRule as kernelMatch, parseHostRules as kernelRules } from '../../../kernel/src/plugins/broker/host-allowlist.js';
import { FetchRefused, pinnedFetch } from '../../../kernel/src/plugins/broker/pinned-fetch.js';
import { methodProblem as kernelMethodProblem, resultProblem as kernelResultProblem } from '../../../kernel/src/plugins/host/contract-shapes.js';
import { jsonProblem as kernelJsonProblem } from '../../../kernel/src/plugins/host/json-value.js';
import type { Json, PluginKind } from '../index.js';
import { CapabilityError } from './errors.js';
import { checkFetch, classifyAddress, matchHostRule, parseHostRule, type HostRule } from './grant-checks.js';
import { jsonProblem } from './json-check.js';
import { methodProblem, resultProblem } from './result-shapes.js';

const HOSTS = ['ca.example.com', '*.example.org:8443', 'http://10.0.0.5:8080', '[fd00::5]:8443', '127.0.0.1', 'http://localhost', '169.254.169.254', 'HTTPS://Upper.Example.com', 'bad host', '*.com', 'x:99999'];
const URLS = [
  'https://ca.example.com/', 'https://ca.example.com:1234/x', 'http://ca.example.com/', 'https://sub.ca.example.com/',
  'https://a.example.org:8443/', 'https://example.org:8443/', 'https://a.b.example.org/', 'http://10.0.0.5:8080/', 'https://10.0.0.5:8080/', 'http://10.0.0.5/',
  'https://[fd00::5]:8443/', 'https://[fd00:0::5]:8443/', 'https://127.0.0.1:9/', 'http://localhost:3000/', 'https://169.254.169.254/latest/', 'https://upper.example.com/',
  'ftp://ca.example.com/', 'https://u:p@ca.example.com/', 'https://ca.example.com./',
];

describe('the test host enforces the kernel broker rules', () => {
  it('parses and matches http host entries exactly like the kernel', () => {
    const kit = HOSTS.map(parseHostRule).filter((r): r is HostRule => r !== null);
    const kernel = kernelRules(HOSTS);
    expect(kit.map((r) => r.entry)).toEqual(kernel.map((r) => r.entry));
    for (const u of URLS) {
      const url = new URL(u);
      const a = matchHostRule(kit, url);
      const b = kernelMatch(kernel, url);
      expect('rule' in a ? a.rule.entry : 'refused', u).toBe('rule' in b ? b.rule.entry : 'refused');
    }
  });

  it('classifies addresses like the kernel', () => {
    for (const a of ['8.8.8.8', '10.1.2.3', '172.20.0.1', '192.168.1.1', '100.64.0.1', '127.0.0.1', '127.9.9.9', '0.0.0.0', '169.254.1.1', '169.254.169.254', '169.254.170.2', '168.63.129.16',
      '224.0.0.1', '240.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fd00::1', 'fd00:ec2::254', 'ff02::1', '64:ff9b::7f00:1', '::ffff:127.0.0.1', '::ffff:7f00:1', '2001:db8::1']) {
      expect(classifyAddress(a), a).toBe(kernelClassify(a));
    }
  });

  it('refuses the same fetches the kernel refuses before connecting', async () => {
    const cases: { hosts: string[]; url: string; dns?: Record<string, string[]> }[] = [
      { hosts: ['127.0.0.1'], url: 'https://127.0.0.1:9/' },
      { hosts: ['http://127.0.0.1'], url: 'http://127.0.0.1:9/' },
      { hosts: ['*.internal.test'], url: 'https://a.internal.test:9/', dns: { 'a.internal.test': ['127.0.0.1'] } },
      { hosts: ['meta.internal.test'], url: 'https://meta.internal.test/', dns: { 'meta.internal.test': ['169.254.169.254'] } },
      { hosts: ['169.254.169.254'], url: 'https://169.254.169.254:9/' },
      { hosts: ['ca.internal.test'], url: 'https://ca.internal.test:9/', dns: { 'ca.internal.test': ['::ffff:127.0.0.1'] } },
      { hosts: ['other.test'], url: 'https://127.0.0.1:9/' },
      { hosts: [], url: 'https://127.0.0.1:9/' },
    ];
    for (const c of cases) {
      const kit = (() => {
        try {
          checkFetch({ http: { hosts: c.hosts } }, { url: c.url }, c.dns);
          return 'allowed';
        } catch (err) {
          return err instanceof CapabilityError ? 'refused' : 'error';
        }
      })();
      const kernel = await pinnedFetch({ url: c.url }, {
        hosts: c.hosts, deadline: Date.now() + 2000,
        lookup: async (h) => (c.dns?.[h] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
      }).then(() => 'allowed', (err: unknown) => (err instanceof FetchRefused ? 'refused' : 'allowed'));
      expect(kit, JSON.stringify(c)).toBe(kernel);
    }
  });

  it('checks results and methods like the kernel', () => {
    const results: [PluginKind, string, unknown][] = [
      ['issuer', 'issue', { status: 'issued', certificatePem: 'x', chainPem: [] }],
      ['issuer', 'issue', { status: 'issued', certificatePem: '', chainPem: [] }],
      ['issuer', 'issue', { status: 'issued', certificatePem: 'x', chainPem: [], extra: 1 }],
      ['issuer', 'issue', { status: 'pending', orderId: 'o', retryAfterSeconds: -1 }],
      ['issuer', 'issue', { status: 'denied', reason: 'no' }],
      ['issuer', 'issue', { status: 'failed', reason: 'no' }],
      ['issuer', 'issue', { status: 'weird' }],
      ['issuer', 'issue', []],
      ['issuer', 'revoke', { status: 'revoked' }],
      ['issuer', 'getCaChain', { chainPem: Array(21).fill('x') }],
      ['issuer', 'renewalInfo', null],
      ['issuer', 'renewalInfo', { suggestedWindow: { start: '2030-01-01T00:00:00Z', end: '2030-01-02T00:00:00Z' } }],
      ['issuer', 'renewalInfo', { suggestedWindow: { start: 'tomorrow', end: '2030-01-02T00:00:00Z' } }],
      ['issuer', 'validateConfig', { ok: false, reason: 'bad url' }],
      ['issuer', 'validateConfig', { ok: false }],
      ['target', 'deploy', { status: 'deployed', changed: true, snapshotId: 's' }],
      ['target', 'deploy', { status: 'failed', reason: 'x' }],
      ['target', 'verify', { status: 'success', observedFingerprintSha256: 'ab' }],
      ['target', 'rollback', { ok: true, reason: 1 }],
      ['notifier', 'notify', { status: 'sent' }],
      ['notifier', 'notify', { status: 'failed', reason: 'smtp down', retryable: true }],
      ['discovery', 'discover', { certificates: [{ certificatePem: 'x', source: 'scan' }], nextCursor: 'c' }],
      ['discovery', 'discover', { certificates: [{ certificatePem: 'x' }] }],
    ];
    for (const [kind, method, result] of results) {
      expect(resultProblem(kind, method, result) === null, `${kind}.${method} ${JSON.stringify(result)}`).toBe(kernelResultProblem(kind, method, result as Json) === null);
    }
    for (const [kind, features, method] of [['issuer', ['revoke'], 'revoke'], ['issuer', [], 'revoke'], ['issuer', [], 'deploy'], ['target', [], 'verify'], ['issuer', [], 'Bad-Name']] as const) {
      expect(methodProblem(kind, features, method) === null, `${kind}.${method}`).toBe(kernelMethodProblem(kind, features, method) === null);
    }
    class Thing {}
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    [1, 'x', null, [1, { a: true }], undefined, NaN, () => 1, new Date(0), new Thing(), cyclic, { a: undefined }, Object.create(null)].forEach((v, i) => {
      expect(jsonProblem(v), `value #${i}`).toBe(kernelJsonProblem(v));
    });
  });
});
