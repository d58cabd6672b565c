import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { PluginKind } from '@certctl/sdk';
import type { PluginCallError } from './contracts.js';
import { instanceTable } from '../instances/instance-tables.js';

/** Longest last_error kept; runner messages are short, but a plugin controls part of them. */
export const MAX_ERROR_CHARS = 1000;
/** last_success_at is rewritten at most this often per instance, so a busy instance costs no write per call. */
export const SUCCESS_WRITE_EVERY_MS = 60_000;

/**
 * Records the outcome of plugin calls on the instance row (issuers, targets,
 * notifiers), so the API can show why an instance's plugin fails. The message
 * comes from the runner (never config secrets) and is cut to MAX_ERROR_CHARS.
 * Bookkeeping never fails the plugin call: a write that fails is logged.
 */
export class InstanceHealth {
  /** When this process last wrote last_success_at, per table:id. */
  private readonly successWritten = new Map<string, number>();

  constructor(private readonly knex: Knex, private readonly log: Logger, private readonly now: () => number = Date.now) {}

  async failed(kind: PluginKind, instanceId: string, err: PluginCallError): Promise<void> {
    const table = instanceTable(kind);
    if (!table) return;
    // The next success after a failure is written at once, so recovery shows without a minute's lag.
    this.successWritten.delete(`${table}:${instanceId}`);
    const message = err.message.length > MAX_ERROR_CHARS ? `${err.message.slice(0, MAX_ERROR_CHARS - 1)}…` : err.message;
    await this.write(table, instanceId, { last_error: message, last_error_code: err.code, last_error_at: new Date(this.now()) });
  }

  async succeeded(kind: PluginKind, instanceId: string): Promise<void> {
    const table = instanceTable(kind);
    if (!table) return;
    const key = `${table}:${instanceId}`;
    const at = this.now();
    const last = this.successWritten.get(key);
    if (last !== undefined && at - last < SUCCESS_WRITE_EVERY_MS) return;
    this.successWritten.set(key, at);
    await this.write(table, instanceId, { last_success_at: new Date(at) });
  }

  private async write(table: string, instanceId: string, fields: Record<string, unknown>): Promise<void> {
    try {
      // updated_at is left alone: it tracks configuration changes, not call outcomes.
      await this.knex(table).where({ id: instanceId }).update(fields);
    } catch (err) {
      this.log.warn({ table, instance_id: instanceId, err: (err as Error)?.message ?? String(err) }, 'could not record plugin instance health');
    }
  }
}
