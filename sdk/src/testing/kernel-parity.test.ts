import { describe, expect, it } from 'vitest';
// The kernel's own rules, to prove the test host enforces the same ones.
import { FetchRefused, pinnedFetch } from '../../../kernel/src/plugins/broker/pinned-fetch.js';
import { methodProblem as kernelMethodProblem, resultProblem as kernelResultProblem } from '../../../kernel/src/plugins/host/contract-shapes.js';
import type { Json, PluginKind } from '../index.js';
import { CapabilityError } from './errors.js';
import { checkFetch } from './grant-checks.js';
import { methodProblem, resultProblem } from './result-shapes.js';

describe('the test host enforces the kernel broker rules', () => {
  // Host rules and address classes are one shared module (sdk/src/policy): tested there, not compared here.
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
  });
});
