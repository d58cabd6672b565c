import { actorOf } from '../../audit/audit-log.js';
import { appError } from '../../errors.js';
import { runList } from '../../http/list-query.js';
import { markAuditResource, type RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { loadRow, type Row } from '../crud.js';
import { discoveryReportRoute } from './discovery-report.js';
import { DISCOVERY_STATUSES, discoveredList, scansList, serializeDiscovered, serializeScan } from './discovery-model.js';

const BASE = '/api/v1/discovered-certificates';
const tag = 'discovery';

const claimBody = {
  type: 'object', additionalProperties: false, required: ['certificate_id'],
  properties: { certificate_id: { type: 'string', minLength: 1, maxLength: 64, description: 'The managed certificate this file holds' } },
};

/** Filesystem discovery: agents' reports, the triage queue (claim or dismiss), scan history and a summary. */
export function discoveryRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;

  /** Moves a discovered certificate to a triage state in one audited transaction. */
  const triage = async (id: string, principal: Parameters<typeof actorOf>[0], change: { status: 'Managed' | 'Dismissed'; managed_certificate_id: string | null }) =>
    knex.transaction(async (trx) => {
      const row = await loadRow(trx, 'discovered_certificates', 'discovered certificate', id, { lock: true });
      const [updated] = (await trx('discovered_certificates').where({ id }).update({ ...change, updated_at: trx.fn.now() }).returning('*')) as Row[];
      await k.audit.append({
        category: 'lifecycle', ...actorOf(principal), action: change.status === 'Managed' ? 'discovered_certificate_claimed' : 'discovered_certificate_dismissed',
        resource_type: 'discovered_certificate', resource_id: id,
        details: { from: row.status, to: change.status, managed_certificate_id: change.managed_certificate_id, fingerprint_sha256: row.fingerprint_sha256, agent_id: row.agent_id },
      }, trx);
      return serializeDiscovered(updated);
    });

  return [
    discoveryReportRoute(k),
    {
      method: 'GET', path: BASE, access: 'discovery.read', tag, list: discoveredList, summary: 'List certificates found on disk by agents (?agent_id, ?status, ...)',
      handler: (_ctx, { list }) => runList(() => knex('discovered_certificates'), discoveredList, list!, serializeDiscovered),
    },
    {
      method: 'GET', path: `${BASE}/:id`, access: 'discovery.read', tag, summary: 'Get a discovered certificate',
      handler: async (ctx, { params }) => {
        markAuditResource(ctx, 'discovered_certificate', params.id);
        return serializeDiscovered(await loadRow(knex, 'discovered_certificates', 'discovered certificate', params.id));
      },
    },
    {
      method: 'POST', path: `${BASE}/:id/claim`, access: 'discovery.manage', tag, body: claimBody,
      summary: 'Claim a discovered certificate: link it to the managed certificate it is (status Managed)',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'discovered_certificate', params.id);
        const certId = (body as { certificate_id: string }).certificate_id;
        const cert = (await knex('managed_certificates').where({ id: certId }).first('id', 'profile_id', 'issuer_id')) as { profile_id: string | null; issuer_id: string | null } | undefined;
        // A certificate the caller cannot see does not exist for them.
        if (!cert || !principal.can('cert.read', cert)) {
          throw appError('REFERENCE_NOT_FOUND', `certificate_id: certificate ${certId} does not exist`, { details: [{ path: '/certificate_id', message: 'certificate not found' }] });
        }
        return triage(params.id, principal, { status: 'Managed', managed_certificate_id: certId });
      },
    },
    {
      method: 'POST', path: `${BASE}/:id/dismiss`, access: 'discovery.manage', tag, summary: 'Dismiss a discovered certificate from the triage queue (status Dismissed)',
      handler: async (ctx, { params, principal }) => {
        markAuditResource(ctx, 'discovered_certificate', params.id);
        return triage(params.id, principal, { status: 'Dismissed', managed_certificate_id: null });
      },
    },
    {
      method: 'GET', path: '/api/v1/discovery-scans', access: 'discovery.read', tag, list: scansList, summary: 'Discovery reports received from agents',
      handler: (_ctx, { list }) => runList(() => knex('discovery_scans'), scansList, list!, serializeScan),
    },
    {
      method: 'GET', path: '/api/v1/discovery-summary', access: 'discovery.read', tag, summary: 'Discovered certificates counted by triage status',
      handler: async () => {
        const rows = (await knex('discovered_certificates').select('status').count({ n: '*' }).groupBy('status')) as { status: string; n: number | string }[];
        const byStatus = Object.fromEntries(DISCOVERY_STATUSES.map((s) => [s, 0])) as Record<string, number>;
        for (const r of rows) byStatus[r.status] = Number(r.n);
        const agents = (await knex('discovered_certificates').countDistinct({ n: 'agent_id' }).first()) as { n: number | string } | undefined;
        return { total: Object.values(byStatus).reduce((a, b) => a + b, 0), by_status: byStatus, agents: Number(agents?.n ?? 0) };
      },
    },
  ];
}
