import { describe, expect, it } from 'vitest';
import { describeThrown, fromJsonText, jsonProblem, toJsonText } from './json-value.js';

describe('plugin JSON values', () => {
  it('accepts plain JSON and refuses everything else with the path', () => {
    expect(jsonProblem({ a: [1, 'x', null, true, { b: Object.create(null) }] })).toBeNull();
    expect(jsonProblem({ a: undefined })).toBe('result.a is a undefined, not JSON');
    expect(jsonProblem({ a: [1, NaN] })).toBe('result.a[1] is NaN, not a JSON number');
    expect(jsonProblem({ d: new Date() })).toBe('result.d is a Date object, not plain JSON');
    expect(jsonProblem(new Map())).toBe('result is a Map object, not plain JSON');
    expect(jsonProblem({ f: () => 1 })).toBe('result.f is a function, not JSON');
    expect(jsonProblem({ n: 10n })).toBe('result.n is a bigint, not JSON');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(jsonProblem(cyclic)).toBe('result.self is a circular reference');
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(jsonProblem(deep)).toMatch(/nested deeper than 64/);
    // The same object twice (not a cycle) is fine.
    const shared = { x: 1 };
    expect(jsonProblem({ a: shared, b: shared })).toBeNull();
  });

  it('serialises within a byte cap, counting UTF-8 bytes', () => {
    expect(toJsonText({ a: 1 }, 100)).toEqual({ ok: true, text: '{"a":1}' });
    expect(toJsonText('é'.repeat(40), 50)).toMatchObject({ ok: false, reason: expect.stringContaining('over the 50-byte limit') });
    const hostile = { get boom() { throw new Error('getter'); } };
    expect(toJsonText(hostile, 100)).toMatchObject({ ok: false, reason: expect.stringContaining('getter') });
    expect(fromJsonText('{"a":1}', 100)).toEqual({ ok: true, value: { a: 1 } });
    expect(fromJsonText('{', 100)).toMatchObject({ ok: false });
    expect(fromJsonText(42, 100)).toMatchObject({ ok: false });
  });

  it('describes anything thrown without running hostile code paths into a throw', () => {
    expect(describeThrown(new TypeError('bad'))).toBe('TypeError: bad');
    expect(describeThrown('oops')).toBe('non-Error value thrown: oops');
    expect(describeThrown(42)).toBe('non-Error value thrown: 42');
    expect(describeThrown(undefined)).toBe('non-Error value thrown: undefined');
    expect(describeThrown({ toString() { throw new Error('x'); } })).toBe('non-Error value thrown: an object');
    expect(describeThrown(Symbol('s'))).toBe('non-Error value thrown: a symbol');
    expect(describeThrown(new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); } }))).toBe('non-Error value thrown (unreadable)');
    expect(describeThrown(new Error('x'.repeat(5000))).length).toBeLessThan(1100);
  });
});
