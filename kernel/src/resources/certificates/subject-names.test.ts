import { describe, expect, it } from 'vitest';
import { isDnsName, normaliseSans } from './subject-names.js';

describe('subject alternative names', () => {
  it.each(['example.com', 'a.b-c.example.com', '*.example.com', 'localhost', 'xn--bcher-kva.example', `${'a'.repeat(63)}.com`])('accepts DNS name %s', (n) => {
    expect(isDnsName(n)).toBe(true);
  });

  it.each(['', '*', 'a.*.com', '*.*.com', '-a.com', 'a-.com', 'a..com', 'a.com.', 'a b.com', 'a_b.com', '300.1.1.1', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}com`])('refuses DNS name %j', (n) => {
    expect(isDnsName(n)).toBe(false);
  });

  it('normalises, keeps order and drops duplicates', () => {
    expect(normaliseSans([' WWW.Example.com ', '192.0.2.1', '2001:DB8::1', 'Ops@Example.com', 'www.example.com'])).toEqual(['www.example.com', '192.0.2.1', '2001:db8::1', 'Ops@Example.com']);
  });

  it('reports every bad entry with its index', () => {
    try {
      normaliseSans(['ok.example.com', 'not ok', 'x@', '@example.com', 'a@b', '999.1.1.1.1']);
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string }).code).toBe('VALIDATION_FAILED');
      expect((err as { details: { path: string }[] }).details.map((d) => d.path)).toEqual(['/sans/1', '/sans/2', '/sans/3', '/sans/4', '/sans/5']);
    }
  });
});
