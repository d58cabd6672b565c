import { appError } from '../../errors.js';
import { ajv, toDetails } from '../../http/validation.js';
import { runList } from '../../http/list-query.js';
import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { crudRoutes, loadRow, type CrudSpec, type Row } from '../crud.js';
import { assertValidPatterns } from '../profiles/patterns.js';
import { POLICY_CONFIG_SCHEMAS, POLICY_TYPES, policiesList, policyBodyRules, policyProperties, policyViolationsList, violationsList, type PolicyType } from './schemas.js';
import { markAuditResource } from '../../http/route.js';

// Compiled once: used when an update changes config but keeps the stored type.
const configValidators = Object.fromEntries(POLICY_TYPES.map((t) => [t, ajv.compile(POLICY_CONFIG_SCHEMAS[t])]));

export const policySpec: CrudSpec = {
  kind: 'policy',
  table: 'policies',
  basePath: '/api/v1/policies',
  tag: 'policies',
  noun: 'policy',
  permissions: { read: 'policy.read', create: 'policy.manage', update: 'policy.manage', delete: 'policy.manage' },
  properties: policyProperties,
  required: ['name', 'type', 'config'],
  bodyRules: policyBodyRules,
  jsonColumns: ['config'],
  list: policiesList,
  references: { agent_group_id: { table: 'agent_groups', noun: 'agent_group' } },
  beforeWrite: (data, { existing }) => {
    const type = (data.type ?? existing?.type) as PolicyType;
    if (data.config !== undefined && data.type === undefined) {
      // The body rules only see the type when it is in the body.
      const validate = configValidators[type];
      if (!validate(data.config)) {
        const details = toDetails(validate.errors).map((d) => ({ ...d, path: `/config${d.path === '/' ? '' : d.path}` }));
        throw appError('VALIDATION_FAILED', `config does not fit a ${type} policy: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`, { details });
      }
    }
    if (type === 'san_pattern' && data.config) assertValidPatterns((data.config as { patterns?: unknown }).patterns, '/config/patterns');
    return data;
  },
};

export function policyRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const serializeViolation = (r: Row) => r;
  return [
    ...crudRoutes(k, policySpec),
    {
      method: 'GET', path: `${policySpec.basePath}/:id/violations`, access: 'policy.read', tag: 'policies', list: policyViolationsList,
      summary: 'Violations of one policy',
      handler: async (ctx, { params, list }) => {
        markAuditResource(ctx, 'policy', params.id);
        await loadRow(knex, 'policies', 'policy', params.id);
        return runList(() => knex('policy_violations').where({ policy_id: params.id }), policyViolationsList, list!, serializeViolation);
      },
    },
    {
      method: 'GET', path: '/api/v1/policy-violations', access: 'policy.read', tag: 'policies', list: violationsList,
      summary: 'Policy violations across all policies',
      handler: (_ctx, { list }) => runList(() => knex('policy_violations'), violationsList, list!, serializeViolation),
    },
  ];
}
