import crypto from 'node:crypto';

/** The columns that are hashed, in order. Changing any of them breaks the chain. */
export interface AuditRecord {
  seq: number;
  id: string;
  occurred_at: Date;
  category: 'api' | 'lifecycle' | 'auth' | 'system';
  actor: string;
  actor_type: string;
  action: string;
  resource_type: string;
  resource_id: string;
  method: string | null;
  path: string | null;
  status_code: number | null;
  latency_ms: number | null;
  body_sha256: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/** JSON with object keys sorted at every depth, so jsonb's own key order cannot matter. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export function hashAuditRecord(r: AuditRecord): string {
  return crypto.createHash('sha256').update(chainMaterial(r.seq, hashedColumns(hashedValues(r)), r.prev_hash), 'utf8').digest('hex');
}

/**
 * The hashed columns between seq and prev_hash, in hash order, with their SQL
 * types: the database function that links new rows (migration 019,
 * certctl_audit_append) takes them as arrays in this order.
 */
export const HASHED_COLUMNS = [
  ['id', 'text'], ['occurred_at', 'timestamptz'], ['category', 'text'], ['actor', 'text'], ['actor_type', 'text'], ['action', 'text'],
  ['resource_type', 'text'], ['resource_id', 'text'], ['method', 'text'], ['path', 'text'], ['status_code', 'integer'], ['latency_ms', 'integer'],
  ['body_sha256', 'text'], ['request_id', 'text'], ['details', 'jsonb'],
] as const;

/** A row's HASHED_COLUMNS values as they are hashed (occurred_at as its ISO string). */
export function hashedValues(r: Omit<AuditRecord, 'seq' | 'prev_hash'>): unknown[] {
  return HASHED_COLUMNS.map(([c]) => (c === 'occurred_at' ? r.occurred_at.toISOString() : r[c]));
}

/**
 * The canonical JSON array of a row's hashed columns without its first (seq)
 * and last (prev_hash) elements: what the database completes when it links a
 * new row, and what verification completes from the stored row.
 */
export function hashedColumns(values: unknown[]): string {
  return canonicalJson(values).slice(1, -1);
}

/** canonicalJson([seq, ...columns, prevHash]): seq is a safe integer and prevHash hex, so neither needs escaping. */
function chainMaterial(seq: number, columns: string, prevHash: string): string {
  return `[${seq},${columns},${JSON.stringify(prevHash)}]`;
}

export interface ChainCheck {
  valid: boolean;
  checked: number;
  last_seq: number | null;
  head_hash: string | null;
  /** The first row whose link or content does not verify. */
  broken_at?: { seq: number; id: string; reason: 'hash_mismatch' | 'prev_hash_mismatch' | 'sequence_gap' };
}
