import type { ListSpec } from '../../http/list-query.js';
import type { Row } from '../crud.js';

/** Triage states of a certificate found on disk (seeds: Filesystem Discovery). */
export const DISCOVERY_STATUSES = ['Unmanaged', 'Managed', 'Dismissed'] as const;

export const DISCOVERED_FIELDS = [
  'id', 'agent_id', 'fingerprint_sha256', 'source_path', 'common_name', 'sans', 'subject_dn', 'issuer_dn', 'serial_number',
  'not_before', 'not_after', 'key_algorithm', 'key_size', 'is_ca', 'certificate_pem', 'status', 'managed_certificate_id',
  'first_seen_at', 'last_seen_at', 'created_at', 'updated_at',
] as const;

export const discoveredList: ListSpec = {
  sortable: { last_seen_at: 'last_seen_at', first_seen_at: 'first_seen_at', not_after: 'not_after', common_name: 'common_name', created_at: 'created_at' },
  defaultSort: '-last_seen_at',
  filters: {
    agent_id: { description: 'Found by this agent (comma-separated values)', column: 'agent_id' },
    status: { description: 'Triage status', column: 'status', enum: DISCOVERY_STATUSES },
    fingerprint_sha256: { description: 'SHA-256 fingerprint (lowercase hex)', column: 'fingerprint_sha256' },
    managed_certificate_id: { description: 'Linked to this managed certificate', column: 'managed_certificate_id' },
    is_ca: { description: 'CA certificates only (true) or leaf certificates only (false)', enum: ['true', 'false'], apply: (qb, v) => { if (v.length === 1) qb.where('is_ca', v[0] === 'true'); } },
  },
  timeFilters: {
    expires_before: { column: 'not_after', op: '<' },
    expires_after: { column: 'not_after', op: '>' },
    seen_after: { column: 'last_seen_at', op: '>' },
    seen_before: { column: 'last_seen_at', op: '<' },
  },
  fields: DISCOVERED_FIELDS,
};

export function serializeDiscovered(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of DISCOVERED_FIELDS) out[f] = row[f] ?? (f === 'sans' ? [] : null);
  return out;
}

export const SCAN_FIELDS = ['id', 'agent_id', 'scanned_dirs', 'certificates_found', 'certificates_new', 'certificates_rejected', 'errors', 'created_at'] as const;

export const scansList: ListSpec = {
  sortable: { created_at: 'created_at' },
  defaultSort: '-created_at',
  filters: { agent_id: { description: 'Reports of this agent (comma-separated values)', column: 'agent_id' } },
  timeFilters: { created_after: { column: 'created_at', op: '>' }, created_before: { column: 'created_at', op: '<' } },
  fields: SCAN_FIELDS,
};

export function serializeScan(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of SCAN_FIELDS) out[f] = row[f] ?? null;
  return out;
}
