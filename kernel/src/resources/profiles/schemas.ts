import type { ListSpec } from '../../http/list-query.js';
import type { JsonSchema } from '../../http/route.js';
import { booleanFilter, TIME_FILTERS, TIMESTAMP_SORTS } from '../crud.js';

export const KEY_ALGORITHMS = ['RSA', 'ECDSA', 'Ed25519'] as const;
export const EKUS = ['serverAuth', 'clientAuth', 'codeSigning', 'emailProtection', 'timeStamping'] as const;
/** Twenty years: a cap, not a recommendation. */
export const MAX_TTL_SECONDS = 20 * 366 * 24 * 3600;

const onAlgorithm = (algorithm: string, then: JsonSchema): JsonSchema => ({ if: { properties: { algorithm: { const: algorithm } } }, then });

/** One allowed key type and its smallest size; the size rule depends on the algorithm. */
export const keyAlgorithmRule: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['algorithm'],
  properties: {
    algorithm: { type: 'string', enum: KEY_ALGORITHMS },
    min_size: { type: 'integer', description: 'RSA: modulus bits (2048-16384); ECDSA: curve bits (256, 384, 521); Ed25519: 256 or omitted' },
  },
  allOf: [
    onAlgorithm('RSA', { required: ['min_size'], properties: { min_size: { type: 'integer', minimum: 2048, maximum: 16384 } } }),
    onAlgorithm('ECDSA', { required: ['min_size'], properties: { min_size: { type: 'integer', enum: [256, 384, 521] } } }),
    onAlgorithm('Ed25519', { properties: { min_size: { type: 'integer', const: 256 } } }),
  ],
};

export const sanPatterns: JsonSchema = {
  type: 'array', maxItems: 50, items: { type: 'string', minLength: 1, maxLength: 500 },
  description: 'Regular expressions (JavaScript syntax); checked when saved',
};

export const profileProperties: Record<string, JsonSchema> = {
  name: { type: 'string', minLength: 1, maxLength: 100 },
  description: { type: 'string', maxLength: 1000 },
  allowed_key_algorithms: { type: 'array', maxItems: 3, items: keyAlgorithmRule, description: 'Empty: any key type' },
  max_ttl_seconds: { type: ['integer', 'null'], minimum: 60, maximum: MAX_TTL_SECONDS, description: 'Longest validity; null: the issuer decides' },
  allowed_ekus: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: EKUS } },
  required_san_patterns: sanPatterns,
  requires_approval: { type: 'boolean' },
  enabled: { type: 'boolean' },
};

export const PROFILE_FIELDS = ['id', 'name', 'description', 'allowed_key_algorithms', 'max_ttl_seconds', 'allowed_ekus',
  'required_san_patterns', 'requires_approval', 'enabled', 'created_at', 'updated_at'] as const;

export const profilesList: ListSpec = {
  sortable: { name: 'name', max_ttl_seconds: 'max_ttl_seconds', ...TIMESTAMP_SORTS },
  defaultSort: 'name',
  nullable: ['max_ttl_seconds'],
  filters: {
    enabled: booleanFilter('enabled', 'Only enabled (true) or disabled (false) profiles'),
    requires_approval: booleanFilter('requires_approval', 'Profiles that do (true) or do not (false) need approval'),
  },
  timeFilters: TIME_FILTERS,
  fields: PROFILE_FIELDS,
};
