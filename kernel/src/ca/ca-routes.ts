import { appError } from '../errors.js';
import { markAuditResource, type RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import type { LoopDef } from '../scheduler/scheduler.js';
import { CaHierarchy } from './ca-hierarchy.js';
import { CA_KEY_ALGORITHMS } from './ca-requests.js';

const instances = new WeakMap<object, CaHierarchy>();

/** The CA hierarchy service of one kernel (keyed by its database handle, like the revocation services). */
export function caHierarchyOf(k: KernelServices): CaHierarchy {
  let h = instances.get(k.db);
  if (!h) {
    h = new CaHierarchy(k);
    instances.set(k.db, h);
  }
  return h;
}

const subtrees = {
  type: 'object', additionalProperties: false,
  properties: Object.fromEntries(['dns', 'ip', 'email'].map((kind) => [kind, { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 320 } }])),
};

const createBody = {
  type: 'object', additionalProperties: false, required: ['subject'],
  properties: {
    parent_id: { type: 'string', minLength: 1, maxLength: 64, description: 'The CA that signs the new one (default: the issuing CA)' },
    subject: { type: 'string', minLength: 3, maxLength: 1024, description: 'Distinguished name, e.g. "CN=Acme Issuing CA 1, O=Acme"' },
    key_algorithm: { type: 'string', enum: [...CA_KEY_ALGORITHMS] },
    validity_days: { type: 'integer', minimum: 1, maximum: 36_500, description: 'Capped at the parent chain\'s expiry' },
    path_len_constraint: { type: ['integer', 'null'], minimum: 0, maximum: 10 },
    name_constraints: { type: 'object', additionalProperties: false, properties: { permitted: subtrees, excluded: subtrees } },
    activate: { type: 'boolean', description: 'Make the new CA the issuer\'s issuing CA at once' },
  },
};

/** Read access to an issuer's CAs follows issuer.read (scoped grants see their issuers only); changes need ca.manage. */
export function caHierarchyRoutes(k: KernelServices): RouteDef[] {
  const h = () => caHierarchyOf(k);
  const base = '/api/v1/issuers/:id/intermediates';
  const canRead = (principal: { can(p: 'issuer.read', r: { issuer_id: string }): boolean }, issuerId: string) => {
    if (!principal.can('issuer.read', { issuer_id: issuerId })) throw appError('NOT_FOUND', `issuer ${issuerId} not found`);
  };
  /** POST .../:ca_id/{activate,retire}: a state change of one CA, under ca.manage for the issuer. */
  const caAction = (action: 'activate' | 'retire', summary: string): RouteDef => ({
    method: 'POST', path: `${base}/:ca_id/${action}`, access: 'ca.manage', tag: 'issuers', summary,
    handler: async (ctx, { params, principal }) => {
      principal.require('ca.manage', { issuer_id: params.id });
      markAuditResource(ctx, 'certificate_authority', params.ca_id);
      return h()[action](params.id, params.ca_id, principal);
    },
  });
  return [
    {
      method: 'GET', path: base, access: 'issuer.read', tag: 'issuers',
      summary: 'The issuer\'s CA tree (root, intermediates, issuing CA): status, path length, name constraints, validity, fingerprint; never a key',
      handler: async (_ctx, { params, principal }) => {
        canRead(principal, params.id);
        return { data: await h().tree(params.id) };
      },
    },
    {
      method: 'POST', path: base, access: 'ca.manage', tag: 'issuers', body: createBody,
      summary: 'Create a child CA under one of the issuer\'s CAs (key made and kept in the kernel), optionally activating it',
      response: { status: 201 },
      handler: async (ctx, { params, body, principal }) => {
        principal.require('ca.manage', { issuer_id: params.id });
        const view = await h().create(params.id, body, principal);
        markAuditResource(ctx, 'certificate_authority', view.id);
        ctx.status = 201;
        return view;
      },
    },
    {
      method: 'GET', path: `${base}/:ca_id`, access: 'issuer.read', tag: 'issuers',
      summary: 'One CA of the issuer',
      handler: async (_ctx, { params, principal }) => {
        canRead(principal, params.id);
        return h().get(params.id, params.ca_id);
      },
    },
    caAction('activate', 'Make a standby CA the issuer\'s issuing CA (the previous one goes to standby)'),
    caAction('retire', 'Retire a CA drain-first: it stops signing now and publishes CRL/OCSP until what it signed has expired'),
  ];
}

/** Retires drained CAs (every 5 minutes, one replica). */
export function caDrainLoop(k: KernelServices): LoopDef {
  return {
    name: 'ca-drain',
    intervalMs: 5 * 60_000,
    singleReplica: true,
    tick: async (signal) => {
      const r = await caHierarchyOf(k).drain(signal);
      if (r.retired.length) k.log.info({ retired: r.retired }, 'drained CAs retired');
    },
  };
}
