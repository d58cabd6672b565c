import type { Knex } from 'knex';
import { actorOf } from '../../audit/audit-log.js';
import { newId } from '../../db/ids.js';
import { markAuditResource, type RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { loadOwnAgent } from '../agents/agent-presence.js';
import type { DiscoveryReport } from '../agents/agent-wire.js';
import { certificateFacts, type CertificateFacts } from './certificate-facts.js';

/**
 * Bounds of one report: at most this many certificates, and the body within
 * CERTCTL_MAX_BODY_SIZE like every JSON request (1 MiB by default, a few hundred
 * PEMs); an agent with more splits its findings over several reports.
 */
export const MAX_REPORTED_CERTIFICATES = 1000;
const MAX_ERRORS = 1000;
const path = { type: 'string', minLength: 1, maxLength: 4096 };

const reportBody = {
  type: 'object',
  additionalProperties: false,
  required: ['certificates'],
  properties: {
    scanned_dirs: { type: 'array', maxItems: 100, items: path },
    certificates: {
      type: 'array', maxItems: MAX_REPORTED_CERTIFICATES,
      items: {
        type: 'object', additionalProperties: false, required: ['source_path', 'certificate_pem'],
        properties: { fingerprint_sha256: { type: 'string', maxLength: 128 }, source_path: path, certificate_pem: { type: 'string', minLength: 1, maxLength: 65_536 } },
      },
    },
    errors: {
      type: 'array', maxItems: MAX_ERRORS,
      items: { type: 'object', additionalProperties: false, required: ['path', 'error'], properties: { path, error: { type: 'string', maxLength: 1000 } } },
    },
  },
};

type Sighting = CertificateFacts & { source_path: string };

/**
 * Inserts new sightings and bumps last_seen_at on known ones, keyed by (fingerprint,
 * agent, path). Triage (status, link) is never touched: a dismissed certificate seen
 * again stays dismissed. Returns how many rows were new.
 */
async function upsertSightings(trx: Knex.Transaction, agentId: string, sightings: Sighting[]): Promise<number> {
  let inserted = 0;
  for (let i = 0; i < sightings.length; i += 200) {
    const rows = sightings.slice(i, i + 200).map((s) => ({ ...s, id: newId('discovered'), agent_id: agentId, sans: JSON.stringify(s.sans) }));
    const res = (await trx('discovered_certificates').insert(rows)
      .onConflict(['fingerprint_sha256', 'agent_id', 'source_path'])
      .merge({ last_seen_at: trx.fn.now(), updated_at: trx.fn.now() })
      // xmax is 0 on a freshly inserted row version and set on an updated one.
      .returning(['xmax'])) as { xmax: string | number }[];
    inserted += res.filter((r) => Number(r.xmax) === 0).length;
  }
  return inserted;
}

/**
 * POST /api/v1/agents/{id}/discoveries: certificates an agent found on disk. The
 * server parses every PEM itself and keeps only the path from the agent's claims
 * (fingerprint, names, dates come from the certificate); unreadable ones are listed
 * back as rejected. Each report is kept as a scan record.
 */
export function discoveryReportRoute(k: KernelServices): RouteDef {
  return {
    method: 'POST', path: '/api/v1/agents/:id/discoveries', access: 'agent.operate', tag: 'discovery', body: reportBody,
    summary: `An agent reports certificates found on disk (at most ${MAX_REPORTED_CERTIFICATES} per report); only that agent's own key may call it`,
    handler: async (ctx, { params, body, principal }) => {
      markAuditResource(ctx, 'agent', params.id);
      const report = body as DiscoveryReport;
      await loadOwnAgent(k.db.knex, principal, params.id);
      const sightings = new Map<string, Sighting>();
      const rejected: { source_path: string; error: string }[] = [];
      for (const c of report.certificates) {
        try {
          const facts = certificateFacts(c.certificate_pem);
          sightings.set(`${facts.fingerprint_sha256}\u0000${c.source_path}`, { ...facts, source_path: c.source_path });
        } catch (err) {
          rejected.push({ source_path: c.source_path, error: (err as Error).message });
        }
      }
      const errors = [...(report.errors ?? []), ...rejected.map((r) => ({ path: r.source_path, error: r.error }))].slice(0, MAX_ERRORS);
      const scanId = newId('discoveryScan');
      const created = await k.db.knex.transaction(async (trx) => {
        const fresh = await upsertSightings(trx, params.id, [...sightings.values()]);
        await trx('discovery_scans').insert({
          id: scanId, agent_id: params.id, scanned_dirs: JSON.stringify(report.scanned_dirs ?? []), certificates_found: sightings.size,
          certificates_new: fresh, certificates_rejected: rejected.length, errors: JSON.stringify(errors),
        });
        await k.audit.append({
          category: 'lifecycle', ...actorOf(principal), action: 'discovery_reported', resource_type: 'agent', resource_id: params.id,
          details: { scan_id: scanId, found: sightings.size, new: fresh, rejected: rejected.length },
        }, trx);
        return fresh;
      });
      return { scan_id: scanId, certificates_found: sightings.size, certificates_new: created, certificates_rejected: rejected.length, rejected };
    },
  };
}
