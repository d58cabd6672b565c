import { describe, expect, it } from 'vitest';
import { canonicalJson, GENESIS_HASH, hashAuditRecord, type AuditRecord } from './chain.js';

const base: AuditRecord = {
  seq: 1, id: 'audit-1', occurred_at: new Date('2026-11-22T10:00:00.000Z'), category: 'api', actor: 'key-1', actor_type: 'user',
  action: 'api_call', resource_type: '', resource_id: '', method: 'GET', path: '/x', status_code: 200, latency_ms: 3,
  body_sha256: null, request_id: 'r', details: { b: 1, a: [1, { d: 2, c: 3 }] }, prev_hash: GENESIS_HASH,
};

describe('audit hash chain', () => {
  it('canonical JSON sorts keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: 1, c: 2 } })).toBe('{"a":{"c":2,"d":1},"b":1}');
    expect(canonicalJson({ a: undefined, b: null })).toBe('{"b":null}');
  });

  it('does not depend on key order in details (jsonb reorders keys)', () => {
    expect(hashAuditRecord(base)).toBe(hashAuditRecord({ ...base, details: { a: [1, { c: 3, d: 2 }], b: 1 } }));
  });

  it('changes with any hashed field', () => {
    const h = hashAuditRecord(base);
    for (const patch of [{ actor: 'key-2' }, { status_code: 500 }, { prev_hash: 'f'.repeat(64) }, { seq: 2 }, { details: { b: 2 } }, { occurred_at: new Date(base.occurred_at.getTime() + 1) }]) {
      expect(hashAuditRecord({ ...base, ...patch } as AuditRecord)).not.toBe(h);
    }
  });
});
