import { ID_PATTERN } from '../../db/ids.js';
import type { ListSpec } from '../../http/list-query.js';
import type { JsonSchema } from '../../http/route.js';
import { booleanFilter, isSetFilter, TIME_FILTERS, TIMESTAMP_SORTS } from '../crud.js';
import { KEY_ALGORITHMS, sanPatterns } from '../profiles/schemas.js';

export const POLICY_TYPES = ['key_algorithm', 'min_key_size', 'max_lifetime', 'san_pattern', 'issuer_restriction'] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];
export const SEVERITIES = ['Info', 'Warning', 'Error', 'Critical'] as const;

const configOf = (properties: Record<string, JsonSchema>, extra: JsonSchema = {}): JsonSchema =>
  ({ type: 'object', additionalProperties: false, properties, ...extra });

/** The `config` shape of each policy type; the policy engine reads exactly these fields. */
export const POLICY_CONFIG_SCHEMAS: Record<PolicyType, JsonSchema> = {
  key_algorithm: configOf({
    allowed_algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: KEY_ALGORITHMS } },
  }, { required: ['allowed_algorithms'] }),
  min_key_size: configOf({
    rsa_min_bits: { type: 'integer', minimum: 1024, maximum: 16384 },
    ecdsa_min_bits: { type: 'integer', enum: [256, 384, 521] },
  }, { minProperties: 1 }),
  max_lifetime: configOf({
    max_days: { type: 'integer', minimum: 1, maximum: 3660 },
  }, { required: ['max_days'] }),
  san_pattern: configOf({
    patterns: { ...sanPatterns, minItems: 1, description: 'Every SAN must match at least one of these regular expressions' },
  }, { required: ['patterns'] }),
  issuer_restriction: configOf({
    allowed_issuer_ids: { type: 'array', minItems: 1, maxItems: 100, uniqueItems: true, items: { type: 'string', pattern: ID_PATTERN } },
  }, { required: ['allowed_issuer_ids'] }),
};

export const policyProperties: Record<string, JsonSchema> = {
  name: { type: 'string', minLength: 1, maxLength: 100 },
  type: { type: 'string', enum: POLICY_TYPES },
  config: { type: 'object', description: 'Shape depends on type (see the per-type rules)' },
  severity: { type: 'string', enum: SEVERITIES },
  enabled: { type: 'boolean' },
  agent_group_id: { type: ['string', 'null'], minLength: 1, maxLength: 64, description: 'Apply only to certificates deployed through agents of this group' },
};

/**
 * Whenever `type` is in the body, `config` must be too and must fit that type:
 * ajv checks the pair on create, and on an update that changes the type.
 */
export const policyBodyRules: JsonSchema[] = POLICY_TYPES.map((t) => ({
  if: { required: ['type'], properties: { type: { const: t } } },
  then: { required: ['config'], properties: { config: POLICY_CONFIG_SCHEMAS[t] } },
}));

export const POLICY_FIELDS = ['id', 'name', 'type', 'config', 'severity', 'enabled', 'agent_group_id', 'created_at', 'updated_at'] as const;

export const policiesList: ListSpec = {
  sortable: { name: 'name', type: 'type', ...TIMESTAMP_SORTS },
  defaultSort: 'name',
  filters: {
    type: { description: 'Policy type', column: 'type', enum: POLICY_TYPES },
    severity: { description: 'Severity', column: 'severity', enum: SEVERITIES },
    enabled: booleanFilter('enabled', 'Only enabled (true) or disabled (false) policies'),
    agent_group_id: { description: 'Policies scoped to this agent group', column: 'agent_group_id' },
  },
  timeFilters: TIME_FILTERS,
  fields: POLICY_FIELDS,
};

export const VIOLATION_FIELDS = ['id', 'policy_id', 'certificate_id', 'severity', 'message', 'resolved_at', 'created_at'] as const;

const violationFilters: NonNullable<ListSpec['filters']> = {
  certificate_id: { description: 'Violations of this certificate', column: 'certificate_id' },
  severity: { description: 'Severity', column: 'severity', enum: SEVERITIES },
  resolved: isSetFilter('resolved_at', 'Resolved (true) or open (false) violations'),
};

/** Violations of one policy (GET /policies/:id/violations). */
export const policyViolationsList: ListSpec = {
  sortable: { created_at: 'created_at', resolved_at: 'resolved_at', severity: 'severity' },
  defaultSort: '-created_at',
  nullable: ['resolved_at'],
  filters: violationFilters,
  timeFilters: { created_after: { column: 'created_at', op: '>' }, created_before: { column: 'created_at', op: '<' } },
  fields: VIOLATION_FIELDS,
};

/** All violations (GET /policy-violations). */
export const violationsList: ListSpec = {
  ...policyViolationsList,
  filters: { policy_id: { description: 'Violations of this policy', column: 'policy_id' }, ...violationFilters },
};
