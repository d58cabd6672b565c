import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashAuditRecord } from '../../kernel/src/audit/chain.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

describe.skipIf(POSTGRES_UNAVAILABLE)('audit trail', () => {
  let t: TestKernel;
  beforeAll(async () => {
    t = await startTestKernel();
    // Some API calls and auth events to chain.
    for (let i = 0; i < 5; i++) await t.api.post('/api/v1/auth/keys', { name: `k${i}` });
    await t.api.get('/api/v1/auth/me');
    await t.kernel.audit.flush();
  });
  afterAll(async () => { await t?.stop(); });

  it('records API calls with actor, method, path, status, latency and body hash', async () => {
    const res = await t.api.get('/api/v1/audit?action=api_call&method=POST&per_page=10');
    expect(res.status).toBe(200);
    const row = res.body.data[0];
    expect(row).toMatchObject({ category: 'api', actor: expect.stringMatching(/^key-/), method: 'POST', path: '/api/v1/auth/keys', status_code: 201 });
    expect(row.body_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(typeof row.latency_ms).toBe('number');
    expect(JSON.stringify(res.body)).not.toContain('cctl_'); // no key material in the trail
  });

  it('concurrent appends from many writers still form one chain', async () => {
    await Promise.all(Array.from({ length: 40 }, (_, i) => t.kernel.audit.append({ category: 'system', actor: 'system', actor_type: 'system', action: `parallel_${i}` })));
    await t.kernel.audit.flush();
    const rows = (await t.kernel.db.knex('audit_events').orderBy('seq')) as { seq: number }[];
    rows.forEach((r, i) => expect(r.seq).toBe(i + 1));
    expect((await t.kernel.audit.verify()).valid).toBe(true);
  });

  it('links rows in the database exactly as the kernel verifies them: any Unicode, escapes, nesting and numbers in the details', async () => {
    const details = {
      zeta: 'last key first', alpha: { nested: ['é', '漢字', '🔐', 'quote " and backslash \\', 'tab\tnew\nline'] },
      numbers: [0, -1, 1.5, 1e21, 2 ** 53 - 1], empty: {}, none: null, yes: true,
    };
    const [row] = await t.kernel.audit.append({ category: 'system', actor: 'system', actor_type: 'system', action: 'chain_material', resource_id: 'ünïcode', details });
    const stored = await t.kernel.db.knex('audit_events').where({ seq: row.seq }).first();
    expect(stored.hash).toBe(hashAuditRecord({ ...stored, occurred_at: new Date(stored.occurred_at), details: typeof stored.details === 'string' ? JSON.parse(stored.details) : stored.details }));
    expect(stored.hash).toBe((row as typeof row & { hash: string }).hash);
    expect((await t.kernel.audit.verify()).valid).toBe(true);
  });

  it('refuses UPDATE, DELETE and TRUNCATE at the database', async () => {
    const knex = t.kernel.db.knex;
    await expect(knex('audit_events').update({ actor: 'mallory' })).rejects.toThrow(/append-only/);
    await expect(knex('audit_events').where('seq', 1).delete()).rejects.toThrow(/append-only/);
    await expect(knex.raw('TRUNCATE audit_events')).rejects.toThrow(/append-only/);
    const v = await t.api.get('/api/v1/audit/verify');
    expect(v.body).toMatchObject({ valid: true });
    expect(v.body.checked).toBeGreaterThan(5);
  });

  it('the chain verifies, and a row changed behind the trigger is detected', async () => {
    const knex = t.kernel.db.knex;
    await t.kernel.audit.flush();
    const ok = await t.kernel.audit.verify();
    expect(ok.valid).toBe(true);
    const target = (await knex('audit_events').orderBy('seq').offset(2).first()) as { seq: number; id: string };
    // Someone with table-owner rights disables the trigger and edits history.
    await knex.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete');
    await knex('audit_events').where('seq', target.seq).update({ actor: 'mallory' });
    await knex.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete');
    const bad = await t.api.get('/api/v1/audit/verify');
    expect(bad.status).toBe(200);
    expect(bad.body).toMatchObject({ valid: false, broken_at: { seq: target.seq, id: target.id, reason: 'hash_mismatch' } });
  });

  it('a deleted row breaks the sequence', async () => {
    const knex = t.kernel.db.knex;
    const last = (await knex('audit_events').max({ m: 'seq' }).first()) as { m: number };
    await knex.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete');
    await knex('audit_events').where('seq', last.m - 1).delete();
    await knex.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete');
    const check = await t.kernel.audit.verify({ fromSeq: last.m - 3 });
    expect(check.valid).toBe(false);
    expect(check.broken_at?.reason).toBe('sequence_gap');
    // Starting right after the deleted row: the missing anchor is a break too, not an unchecked first link.
    const fromGap = await t.kernel.audit.verify({ fromSeq: last.m });
    expect(fromGap).toMatchObject({ valid: false, broken_at: { seq: last.m, reason: 'sequence_gap' } });
  });

  it('exports CSV and JSON to the auditor, with filters', async () => {
    const auditor = await t.keyWithRole('auditor');
    const csv = await t.api.get('/api/v1/audit/export?format=csv&category=auth', { key: auditor });
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toMatch(/text\/csv/);
    expect(csv.headers['content-disposition']).toMatch(/attachment; filename="certctl-audit-.*\.csv"/);
    const lines = csv.text.trim().split('\r\n');
    expect(lines[0].split(',')).toContain('hash');
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.slice(1).every((l) => l.includes(',auth,'))).toBe(true);
    const json = await t.api.get('/api/v1/audit/export?format=json&action=api_key_created&fields=id,action,actor', { key: auditor });
    expect(json.status).toBe(200);
    expect(json.body.length).toBeGreaterThanOrEqual(5);
    expect(Object.keys(json.body[0]).sort()).toEqual(['action', 'actor', 'id']);
    // The auditor cannot read anything else.
    expect((await t.api.get('/api/v1/auth/keys', { key: auditor })).status).toBe(403);
  });
});
