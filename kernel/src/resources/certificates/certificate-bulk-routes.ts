import type { RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { bulkReassign, bulkReassignBody, bulkRenew, bulkRenewBody } from './certificate-bulk.js';

/** POST /api/v1/certificates/bulk-renew and /bulk-reassign. */
export function certificateBulkRoutes(k: KernelServices): RouteDef[] {
  const base = '/api/v1/certificates';
  const tag = 'certificates';
  return [
    {
      method: 'POST', path: `${base}/bulk-renew`, access: 'cert.renew', tag, body: bulkRenewBody,
      summary: 'Queue renewals for the certificates matching the criteria; failures reported per certificate',
      response: { status: 202, description: '{criteria, matched_count, affected_count, jobs, client_renewed (certificates their clients renew: request recorded, no job), failed}' },
      handler: (_ctx, { body, principal }) => bulkRenew(k, principal, body),
    },
    {
      method: 'POST', path: `${base}/bulk-reassign`, access: 'cert.edit', tag, body: bulkReassignBody,
      summary: 'Give the certificates matching the criteria a new owner; failures reported per certificate',
      response: { description: '{criteria, new_owner_id, matched_count, affected_count, updated, unchanged, failed}' },
      handler: (_ctx, { body, principal }) => bulkReassign(k, principal, body),
    },
  ];
}
