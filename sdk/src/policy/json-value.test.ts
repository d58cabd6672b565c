import { describe, expect, it } from 'vitest';
import { jsonProblem } from './json-value.js';

describe('jsonProblem (the rule at every host/plugin crossing)', () => {
  it('accepts plain JSON, including null-prototype objects', () => {
    for (const v of [1, 'x', null, true, [1, { a: true }], Object.create(null)]) expect(jsonProblem(v)).toBeNull();
  });

  it('names what is not JSON, and where', () => {
    class Thing {}
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(jsonProblem(undefined)).toBe('result is a undefined, not JSON');
    expect(jsonProblem({ n: NaN })).toBe('result.n is NaN, not a JSON number');
    expect(jsonProblem([() => 1], 'request')).toBe('request[0] is a function, not JSON');
    expect(jsonProblem({ d: new Date(0) })).toBe('result.d is a Date object, not plain JSON');
    expect(jsonProblem(new Thing())).toBe('result is a Thing object, not plain JSON');
    expect(jsonProblem(cyclic)).toBe('result.self is a circular reference');
    expect(jsonProblem({ a: undefined })).toBe('result.a is a undefined, not JSON');
  });

  it('stops at a depth limit instead of blowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = [deep];
    expect(jsonProblem(deep)).toMatch(/nested deeper than 64 levels/);
  });
});
