import { describe, expect, it } from 'vitest';
import { sanitizeLogFields, sanitizeLogMessage } from './log-fields.js';

describe('plugin log sanitising', () => {
  it('redacts secret-looking keys at any depth and bounds size', () => {
    expect(sanitizeLogFields({ password: 'p', apiKey: 'k', api_key: 'k', Authorization: 'Bearer x', nested: { client_secret: 's', token: 't', keyId: 'kid', ok: 1 } }))
      .toEqual({ password: '[redacted]', apiKey: '[redacted]', api_key: '[redacted]', Authorization: '[redacted]', nested: { client_secret: '[redacted]', token: '[redacted]', keyId: 'kid', ok: 1 } });
    expect(sanitizeLogFields({ a: { b: { c: { d: { e: 1 } } } } })).toEqual({ a: { b: { c: { d: '[nested too deep]' } } } });
    expect(Object.keys(sanitizeLogFields(Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`k${i}`, i]))) as object)).toHaveLength(50);
    expect((sanitizeLogFields({ s: 'x'.repeat(5000) }) as { s: string }).s.length).toBe(1003);
    expect(sanitizeLogFields({ n: Infinity })).toEqual({ n: 'Infinity' });
  });

  it('strips control characters from messages and clips them', () => {
    expect(sanitizeLogMessage('a\u0000b\u001b[31mc\nd')).toBe('a b [31mc\nd');
    expect(sanitizeLogMessage('x'.repeat(3000)).length).toBe(2003);
    expect(sanitizeLogMessage(42)).toBe('42');
  });
});
