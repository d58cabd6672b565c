import { describe, expect, it } from 'vitest';
import { evaluatePolicies, isBlocking, lifetimeLimitDays, type PolicyRow, type PolicySubject } from './policy-engine.js';

const DAY = 86_400_000;
const start = new Date('2026-01-01T00:00:00Z');

const policy = (type: PolicyRow['type'], config: Record<string, unknown>, over: Partial<PolicyRow> = {}): PolicyRow => ({
  id: `pol-${type}`, name: type, type, config, severity: 'Warning', enabled: true, agent_group_id: null, ...over,
});
const subject = (over: Partial<PolicySubject> = {}): PolicySubject => ({
  issuerId: 'iss-a', keyAlgorithm: 'ECDSA', keySize: 256, names: ['app.example.com'], notBefore: start, notAfter: new Date(start.getTime() + 90 * DAY), ...over,
});
const messages = (policies: PolicyRow[], s: PolicySubject) => evaluatePolicies(policies, s).violations.map((v) => v.message);

describe('policy engine', () => {
  it('checks each rule type', () => {
    expect(messages([policy('key_algorithm', { allowed_algorithms: ['RSA'] })], subject())).toEqual(['Policy key_algorithm (key_algorithm): key algorithm ECDSA is not one of RSA']);
    expect(messages([policy('key_algorithm', { allowed_algorithms: ['RSA', 'ECDSA'] })], subject())).toEqual([]);
    expect(messages([policy('min_key_size', { rsa_min_bits: 3072, ecdsa_min_bits: 384 })], subject())).toEqual(['Policy min_key_size (min_key_size): ECDSA key of 256 bits is below the minimum of 384']);
    expect(messages([policy('min_key_size', { rsa_min_bits: 3072 })], subject())).toEqual([]);
    expect(messages([policy('min_key_size', { rsa_min_bits: 3072 })], subject({ keyAlgorithm: 'RSA', keySize: 2048 }))).toHaveLength(1);
    expect(messages([policy('max_lifetime', { max_days: 30 })], subject())).toEqual(['Policy max_lifetime (max_lifetime): lifetime of 90 days exceeds the maximum of 30 days']);
    expect(messages([policy('max_lifetime', { max_days: 90 })], subject())).toEqual([]);
    expect(messages([policy('san_pattern', { patterns: ['\\.example\\.com$'] })], subject({ names: ['a.example.com', 'b.example.org'] }))).toEqual(['Policy san_pattern (san_pattern): name(s) b.example.org match none of the allowed patterns']);
    expect(messages([policy('issuer_restriction', { allowed_issuer_ids: ['iss-b'] })], subject())).toEqual(['Policy issuer_restriction (issuer_restriction): issuer iss-a is not one of iss-b']);
  });

  it('skips disabled policies, and lifetime rules while the validity is unknown', () => {
    const r = evaluatePolicies([policy('key_algorithm', { allowed_algorithms: ['RSA'] }, { enabled: false }), policy('max_lifetime', { max_days: 1 })], subject({ notAfter: null }));
    expect(r).toEqual({ violations: [], passed: [] });
  });

  it('reports passes and violations with their severity', () => {
    const r = evaluatePolicies([policy('key_algorithm', { allowed_algorithms: ['ECDSA'] }), policy('issuer_restriction', { allowed_issuer_ids: ['iss-b'] }, { severity: 'Critical' })], subject());
    expect(r.passed.map((p) => p.id)).toEqual(['pol-key_algorithm']);
    expect(r.violations.map((v) => [v.policy.id, v.severity])).toEqual([['pol-issuer_restriction', 'Critical']]);
  });

  it('blocks on Error and Critical only', () => {
    expect(['Info', 'Warning', 'Error', 'Critical'].map((s) => isBlocking(s as never))).toEqual([false, false, true, true]);
  });

  it('finds the shortest lifetime limit', () => {
    expect(lifetimeLimitDays([policy('max_lifetime', { max_days: 90 }), policy('max_lifetime', { max_days: 30 }, { id: 'p2' }), policy('max_lifetime', { max_days: 5 }, { id: 'p3', enabled: false })])).toBe(30);
    expect(lifetimeLimitDays([policy('key_algorithm', { allowed_algorithms: ['RSA'] })])).toBeNull();
  });
});
