import { describe, expect, it } from 'vitest';
import { methodProblem, requiredMethods, resultProblem } from './contract-shapes.js';

describe('contract shapes', () => {
  it('knows the methods of each kind, gating feature methods on the manifest', () => {
    expect(methodProblem('issuer', [], 'issue')).toBeNull();
    expect(methodProblem('issuer', [], 'renew')).toBe('the plugin does not declare the "renew" feature');
    expect(methodProblem('issuer', ['renew'], 'renew')).toBeNull();
    expect(methodProblem('issuer', [], 'deploy')).toMatch(/^issuer plugins have no method "deploy"/);
    expect(methodProblem('issuer', [], 'constructor')).toMatch(/no method/);
    expect(methodProblem('target', [], 'deploy')).toBeNull();
    expect(methodProblem('protocol', [], 'handle')).toBeNull();
    expect(methodProblem('protocol', [], 'handleOrder')).toMatch(/no method/);
    expect(methodProblem('protocol', [], '__proto__')).toMatch(/not a plugin method name/);
    expect(requiredMethods('issuer')).toEqual(['issue']);
    expect(requiredMethods('notifier')).toEqual(['notify']);
  });

  it('checks issue results by status', () => {
    expect(resultProblem('issuer', 'issue', { status: 'issued', certificatePem: 'P', chainPem: [] })).toBeNull();
    expect(resultProblem('issuer', 'issue', { status: 'pending', orderId: 'o', retryAfterSeconds: 5 })).toBeNull();
    expect(resultProblem('issuer', 'issue', { status: 'failed', reason: 'r', retryable: true })).toBeNull();
    expect(resultProblem('issuer', 'issue', { status: 'denied', reason: 'r' })).toBeNull();
    expect(resultProblem('issuer', 'issue', { status: 'issued', chainPem: [] })).toContain('/certificatePem is required');
    expect(resultProblem('issuer', 'issue', { status: 'issued', certificatePem: 'P', chainPem: [], extra: 1 })).toContain('/extra unknown field');
    expect(resultProblem('issuer', 'issue', { status: 'nope' })).toBe('issue result status must be one of issued, pending, failed, denied, sign');
    // A sign order: from issue and renew only, with its request as an object (checked field by field when signed).
    expect(resultProblem('issuer', 'issue', { status: 'sign', sign: { csrPem: 'C', notAfter: '2099-01-01T00:00:00Z' } })).toBeNull();
    expect(resultProblem('issuer', 'issue', { status: 'sign', sign: 'C' })).toContain('/sign');
    expect(resultProblem('issuer', 'checkOrder', { status: 'sign', sign: {} })).toBe('checkOrder result status must be one of issued, pending, failed, denied');
    expect(resultProblem('issuer', 'issue', 'issued')).toBe('issue result must be an object');
    expect(resultProblem('issuer', 'issue', { status: 'toString' })).toMatch(/status must be one of/);
  });

  it('checks the other result shapes', () => {
    expect(resultProblem('issuer', 'validateConfig', { ok: true })).toBeNull();
    expect(resultProblem('issuer', 'validateConfig', { ok: false, reason: 'x' })).toBeNull();
    expect(resultProblem('issuer', 'validateConfig', { ok: 'true' })).toMatch(/validateConfig result \(ok true\) does not match the contract: \/ok/);
    expect(resultProblem('issuer', 'renewalInfo', null)).toBeNull();
    expect(resultProblem('issuer', 'renewalInfo', { suggestedWindow: { start: '2026-01-01T00:00:00Z', end: 'soon' } })).toContain('/suggestedWindow/end');
    expect(resultProblem('target', 'deploy', { status: 'deployed', changed: true })).toBeNull();
    expect(resultProblem('target', 'deploy', { status: 'failed', reason: 'x' })).toContain('/rolledBack is required');
    expect(resultProblem('notifier', 'notify', { status: 'sent' })).toBeNull();
    expect(resultProblem('discovery', 'discover', { certificates: [{ certificatePem: 'P', source: 's' }], nextCursor: 'c' })).toBeNull();
    expect(resultProblem('protocol', 'anything', { any: ['json'] })).toBeNull();
  });
});
