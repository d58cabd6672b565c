import { appError } from '../errors.js';
import { applyFilters, runList, type ListSpec } from '../http/list-query.js';
import type { RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { canonicalJson } from './chain.js';

const FIELDS = ['id', 'seq', 'occurred_at', 'category', 'actor', 'actor_type', 'action', 'resource_type', 'resource_id',
  'method', 'path', 'status_code', 'latency_ms', 'body_sha256', 'request_id', 'details', 'prev_hash', 'hash'] as const;

const auditFilters: ListSpec['filters'] = {
  actor: { description: 'Actor (API key id, agent id, system)', column: 'actor' },
  actor_type: { description: 'Actor type', column: 'actor_type' },
  action: { description: 'Action, e.g. api_call, job_completed', column: 'action' },
  category: { description: 'Event category', column: 'category', enum: ['api', 'lifecycle', 'auth', 'system'] },
  resource_type: { description: 'Resource type', column: 'resource_type' },
  resource_id: { description: 'Resource id', column: 'resource_id' },
  method: { description: 'HTTP method of API calls', column: 'method', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] },
};
const auditTimes: ListSpec['timeFilters'] = {
  from: { column: 'occurred_at', op: '>=' },
  to: { column: 'occurred_at', op: '<' },
  created_after: { column: 'occurred_at', op: '>' },
  created_before: { column: 'occurred_at', op: '<' },
};

export const auditList: ListSpec = {
  sortable: { occurred_at: 'seq', seq: 'seq', created_at: 'seq' },
  defaultSort: '-seq',
  filters: auditFilters,
  timeFilters: auditTimes,
  fields: FIELDS,
};

const exportSpec: ListSpec = { ...auditList, extra: { format: { description: 'csv (default) or json', enum: ['csv', 'json'] } } };

const EXPORT_LIMIT = 1_000_000;

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = v instanceof Date ? v.toISOString() : typeof v === 'object' ? canonicalJson(v) : String(v);
  // Cells that a spreadsheet would run as a formula are prefixed with a quote.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function auditRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  return [
    {
      method: 'GET', path: '/api/v1/audit', access: 'audit.read', tag: 'audit', summary: 'List audit events', list: auditList,
      handler: (_ctx, { list }) => runList(() => knex('audit_events'), auditList, list!, (r: { id: string }) => r),
    },
    {
      method: 'GET', path: '/api/v1/audit/verify', access: 'audit.read', tag: 'audit', summary: 'Re-compute the hash chain and report the first broken link',
      query: { from_seq: { description: 'Start verification at this sequence number' } },
      handler: async (_ctx, { query }) => {
        const fromSeq = query.from_seq === undefined ? undefined : Number(query.from_seq);
        if (fromSeq !== undefined && !(Number.isInteger(fromSeq) && fromSeq >= 1)) throw appError('BAD_QUERY', 'from_seq must be a positive integer');
        return { ...(await k.audit.verify({ fromSeq })), verified_at: new Date().toISOString() };
      },
    },
    {
      method: 'GET', path: '/api/v1/audit/export', access: 'audit.export', tag: 'audit', summary: 'Export audit events as CSV or JSON (filters as for the list)',
      list: exportSpec, response: { contentType: 'text/csv' },
      handler: async (ctx, { list }) => {
        const format = list!.extra.format ?? 'csv';
        const rows = (await applyFilters(knex('audit_events'), exportSpec, list!).orderBy('seq', list!.sort.desc ? 'desc' : 'asc').limit(EXPORT_LIMIT)) as Record<string, unknown>[];
        const fields = list!.fields ?? [...FIELDS];
        const stamp = new Date().toISOString().replace(/[:.]/g, '-');
        ctx.set('Content-Disposition', `attachment; filename="certctl-audit-${stamp}.${format}"`);
        await k.audit.append({ category: 'auth', actor: ctx.state.principal!.actor, actor_type: ctx.state.principal!.actorType, action: 'audit_exported', resource_type: 'audit', details: { format, rows: rows.length, filters: list!.filters } });
        if (format === 'json') {
          ctx.type = 'application/json';
          return rows.map((r) => Object.fromEntries(fields.map((f) => [f, r[f]])));
        }
        ctx.type = 'text/csv; charset=utf-8';
        return [fields.join(','), ...rows.map((r) => fields.map((f) => csvCell(r[f])).join(','))].join('\r\n') + '\r\n';
      },
    },
    {
      method: 'GET', path: '/api/v1/audit/:id', access: 'audit.read', tag: 'audit', summary: 'Get one audit event',
      handler: async (_ctx, { params }) => {
        const row = await knex('audit_events').where({ id: params.id }).first();
        if (!row) throw appError('NOT_FOUND', `Audit event ${params.id} not found`);
        return row;
      },
    },
  ];
}
