import { ID_PATTERN } from '../../db/ids.js';
import type { JsonSchema } from '../../http/route.js';
import { CERTIFICATE_STATUSES } from './certificate-model.js';

const ref = (what: string): JsonSchema => ({ type: 'string', minLength: 1, maxLength: 64, description: `${what} id` });
const nullableRef = (what: string): JsonSchema => ({ type: ['string', 'null'], minLength: 1, maxLength: 64, description: `${what} id (null clears it)` });

const sans: JsonSchema = {
  type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 320 },
  description: 'Subject alternative names: DNS names (wildcards allowed), IP addresses, e-mail addresses',
};
const tags: JsonSchema = {
  type: 'object', maxProperties: 50, propertyNames: { minLength: 1, maxLength: 64 },
  additionalProperties: { type: 'string', maxLength: 256 }, description: 'Free-form key/value labels',
};
const targetIds: JsonSchema = { type: 'array', maxItems: 500, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 64 } };

const common = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  // RFC 5280 upper bound for a commonName attribute.
  common_name: { type: 'string', minLength: 1, maxLength: 64 },
  sans,
  environment: { type: 'string', maxLength: 64 },
  owner_id: nullableRef('Owner'),
  profile_id: nullableRef('Certificate profile'),
  renewal_policy_id: nullableRef('Renewal policy'),
  agent_id: nullableRef('Agent that generates the key and deploys'),
  tags,
};

export const createCertificateBody: JsonSchema = {
  type: 'object', additionalProperties: false, required: ['name', 'common_name', 'issuer_id'],
  properties: {
    id: { type: 'string', pattern: ID_PATTERN, description: 'Optional readable id; generated when omitted' },
    ...common,
    issuer_id: ref('Issuer'),
    target_ids: { ...targetIds, description: 'Deployment targets to map at creation' },
  },
};

export const updateCertificateBody: JsonSchema = {
  type: 'object', additionalProperties: false, minProperties: 1,
  description: 'Fields not given are kept. issuer_id, profile_id and common_name change only while the certificate is Pending.',
  properties: { ...common, issuer_id: ref('Issuer') },
};

export const setTargetsBody: JsonSchema = {
  type: 'object', additionalProperties: false, required: ['target_ids'],
  properties: { target_ids: { ...targetIds, description: 'The complete new set of targets' } },
};

const ts = { type: ['string', 'null'], format: 'date-time' };
const str = { type: ['string', 'null'] };
export const certificateSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, common_name: { type: 'string' }, sans: { type: 'array', items: { type: 'string' } },
    environment: { type: 'string' }, status: { type: 'string', enum: CERTIFICATE_STATUSES },
    owner_id: str, issuer_id: str, profile_id: str, renewal_policy_id: str, agent_id: str, serial_number: str, fingerprint_sha256: str,
    key_algorithm: str, key_size: { type: ['integer', 'null'] }, not_before: ts, expires_at: ts, tags: { type: 'object' },
    last_renewal_at: ts, last_deployment_at: ts, revoked_at: ts, revocation_reason: str, created_at: ts, updated_at: ts,
    renewal_info: {
      type: ['object', 'null'],
      description: 'GET /certificates/{id} only: the renewal window the issuer suggests (ACME ARI, RFC 9773) for the current version, and the renewal time picked in it',
      properties: {
        suggested_window: { type: ['object', 'null'], properties: { start: ts, end: ts } },
        selected_at: ts, explanation_url: str, checked_at: ts, next_check_at: ts, last_error: str,
      },
    },
  },
};
