import type { Knex } from 'knex';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PluginCallError } from './contracts.js';
import { InstanceHealth, MAX_ERROR_CHARS, SUCCESS_WRITE_EVERY_MS } from './instance-health.js';

/** Records the updates a knex would run; `fail` makes them reject like a lost connection. */
function fakeKnex(opts: { fail?: boolean } = {}) {
  const writes: Array<{ table: string; where: unknown; fields: Record<string, unknown> }> = [];
  const knex = ((table: string) => ({
    where: (where: unknown) => ({
      update: async (fields: Record<string, unknown>) => {
        if (opts.fail) throw new Error('connection terminated');
        writes.push({ table, where, fields });
        return 1;
      },
    }),
  })) as unknown as Knex;
  return { knex, writes };
}

describe('InstanceHealth', () => {
  const log = pino({ level: 'silent' });

  it('records a failure on the row of the plugin kind, message cut to the limit', async () => {
    const { knex, writes } = fakeKnex();
    const health = new InstanceHealth(knex, log, () => 1_000);
    await health.failed('target', 'tgt-1', new PluginCallError('cpu_limit', 'x'.repeat(5000), 'p'));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatchObject({ table: 'targets', where: { id: 'tgt-1' }, fields: { last_error_code: 'cpu_limit', last_error_at: new Date(1_000) } });
    expect((writes[0].fields.last_error as string).length).toBe(MAX_ERROR_CHARS);
    // Kinds without instances write nothing.
    await health.failed('discovery', 'x', new PluginCallError('timeout', 'late', 'p'));
    expect(writes).toHaveLength(1);
  });

  it('writes last_success_at at most once a minute per instance, and at once after a failure', async () => {
    const { knex, writes } = fakeKnex();
    let now = 0;
    const health = new InstanceHealth(knex, log, () => now);
    await health.succeeded('issuer', 'iss-1');
    now = SUCCESS_WRITE_EVERY_MS - 1;
    await health.succeeded('issuer', 'iss-1');
    await health.succeeded('notifier', 'ntf-1');
    expect(writes.map((w) => `${w.table}:${Object.keys(w.fields).join()}`)).toEqual(['issuers:last_success_at', 'notifiers:last_success_at']);
    await health.failed('issuer', 'iss-1', new PluginCallError('plugin_error', 'boom', 'p'));
    await health.succeeded('issuer', 'iss-1');
    expect(writes).toHaveLength(4);
    now += SUCCESS_WRITE_EVERY_MS;
    await health.succeeded('issuer', 'iss-1');
    expect(writes).toHaveLength(5);
  });

  it('never throws when the write fails', async () => {
    const { knex } = fakeKnex({ fail: true });
    const health = new InstanceHealth(knex, log);
    await expect(health.failed('issuer', 'iss-1', new PluginCallError('crashed', 'gone', 'p'))).resolves.toBeUndefined();
    await expect(health.succeeded('issuer', 'iss-1')).resolves.toBeUndefined();
  });
});
