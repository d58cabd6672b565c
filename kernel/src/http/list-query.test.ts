import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { encodeCursor, parseListQuery, type ListSpec } from './list-query.js';

const spec: ListSpec = {
  sortable: { created_at: 'created_at', expires_at: 'expires_at', name: 'name' },
  defaultSort: '-created_at',
  nullable: ['expires_at'],
  filters: { status: { description: 's', column: 'status', enum: ['Active', 'Expired'] }, owner_id: { description: 'o', column: 'owner_id' } },
  timeFilters: { expires_before: { column: 'expires_at', op: '<' } },
  fields: ['id', 'name', 'status'],
};

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as AppError).code;
  }
  return 'no error';
};

describe('parseListQuery', () => {
  it('defaults to page mode with the default sort', () => {
    expect(parseListQuery(spec, {})).toMatchObject({ mode: 'page', page: 1, perPage: 50, sort: { column: 'created_at', desc: true } });
  });

  it('accepts camelCase and snake_case sort names and descending prefix', () => {
    expect(parseListQuery(spec, { sort: '-expiresAt' }).sort).toEqual({ key: 'expiresAt', column: 'expires_at', desc: true });
    expect(parseListQuery(spec, { sort: 'name' }).sort.desc).toBe(false);
    expect(code(() => parseListQuery(spec, { sort: 'password' }))).toBe('UNSUPPORTED_SORT');
  });

  it('switches to cursor mode and round-trips a cursor, dates included', () => {
    const at = new Date('2027-01-02T03:04:05.678Z');
    const cursor = encodeCursor('expires_at', at, 'mc-1');
    const q = parseListQuery(spec, { sort: 'expires_at', cursor, page_size: '10' });
    expect(q).toMatchObject({ mode: 'cursor', perPage: 10, cursor: { v: at, id: 'mc-1' } });
    expect(code(() => parseListQuery(spec, { sort: 'name', cursor }))).toBe('BAD_CURSOR');
    expect(code(() => parseListQuery(spec, { cursor: 'garbage!!' }))).toBe('BAD_CURSOR');
    expect(code(() => parseListQuery(spec, { cursor, page: '2' }))).toBe('BAD_QUERY');
    const withTotal = encodeCursor('name', 'b', 'mc-2', 1234);
    expect(parseListQuery(spec, { sort: 'name', cursor: withTotal }).cursor).toEqual({ v: 'b', id: 'mc-2', total: 1234 });
    expect(code(() => parseListQuery(spec, { sort: 'name', cursor: encodeCursor('name', 'b', 'mc-2', -1) }))).toBe('BAD_CURSOR');
  });

  it('validates filters, fields and unknown parameters', () => {
    expect(parseListQuery(spec, { status: 'Active,Expired' }).filters).toEqual({ status: ['Active', 'Expired'] });
    expect(code(() => parseListQuery(spec, { status: 'Bogus' }))).toBe('BAD_QUERY');
    expect(parseListQuery(spec, { fields: 'name' }).fields).toEqual(['id', 'name']);
    expect(code(() => parseListQuery(spec, { fields: 'name,secret' }))).toBe('UNKNOWN_FIELD');
    expect(code(() => parseListQuery(spec, { colour: 'blue' }))).toBe('BAD_QUERY');
    expect(code(() => parseListQuery(spec, { per_page: '501' }))).toBe('BAD_QUERY');
    expect(code(() => parseListQuery(spec, { expires_before: 'tomorrow' }))).toBe('BAD_QUERY');
    expect(parseListQuery(spec, { expires_before: '2027-01-01T00:00:00Z' }).times.expires_before.toISOString()).toBe('2027-01-01T00:00:00.000Z');
  });
});
