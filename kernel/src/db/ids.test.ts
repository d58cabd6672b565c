import { describe, expect, it } from 'vitest';
import { ID_PATTERN, ID_PREFIXES, newId, newIdSql } from './ids.js';

describe('readable ids', () => {
  it('every kind makes ids of its prefix that fit the id pattern', () => {
    for (const kind of Object.keys(ID_PREFIXES) as (keyof typeof ID_PREFIXES)[]) {
      const id = newId(kind);
      expect(id.startsWith(`${ID_PREFIXES[kind]}-`), kind).toBe(true);
      expect(id).toMatch(new RegExp(ID_PATTERN));
      expect(id).toMatch(/-[0-9a-f]{16}$/);
    }
    expect(newId('approval')).toMatch(/^apr-/);
    expect(newId('revocation')).toMatch(/^rev-/);
  });

  it('the SQL form names the same prefix', () => {
    expect(newIdSql('job')).toBe("('job-' || substr(md5(random()::text || clock_timestamp()::text), 1, 16))");
  });
});
