import { runList } from '../http/list-query.js';
import { markAuditResource, type JsonSchema, type RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { loadVisibleJob } from '../resources/jobs/job-actions.js';
import { serializeJob } from '../resources/jobs/job-model.js';
import { approvalIdForJob, approveRequest, loadVisibleApproval, rejectRequest } from './approval-decisions.js';
import { approvalListSpec, approvalSchema, scopeApprovals, serializeApproval, type ApprovalRow } from './approval-model.js';

const reason = { type: 'string', minLength: 1, maxLength: 1000 };
const approveBody: JsonSchema = { type: 'object', additionalProperties: false, properties: { reason: { ...reason, description: 'Optional note kept with the decision' } } };
const rejectBody: JsonSchema = { type: 'object', additionalProperties: false, required: ['reason'], properties: { reason: { ...reason, description: 'Why the request is turned down' } } };

/**
 * /api/v1/approvals: the approval queue (issuance/renewal jobs and profile edits), and
 * the job-centred /api/v1/jobs/:id/approve|reject, which decide the same requests.
 */
export function approvalRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const base = '/api/v1/approvals';
  const tag = 'approvals';
  return [
    {
      method: 'GET', path: base, access: 'job.read', tag, summary: 'List approval requests (filters status, kind; sort, page or cursor)', list: approvalListSpec,
      response: { schema: approvalSchema },
      handler: (_ctx, { list, principal }) => runList(() => scopeApprovals(knex('approval_requests'), principal), approvalListSpec, list!, (r: ApprovalRow) => serializeApproval(r)),
    },
    {
      method: 'GET', path: `${base}/:id`, access: 'job.read', tag, summary: 'Get an approval request', response: { schema: approvalSchema },
      handler: async (ctx, { params, principal }) => {
        markAuditResource(ctx, 'approval', params.id);
        return serializeApproval((await loadVisibleApproval(knex, principal, params.id)).req);
      },
    },
    {
      method: 'POST', path: `${base}/:id/approve`, access: 'job.approve', tag, body: approveBody, response: { schema: approvalSchema },
      summary: 'Approve a request (not by its requester): the job moves on, or the profile edit is applied',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'approval', params.id);
        return serializeApproval(await approveRequest(k, principal, params.id, body.reason));
      },
    },
    {
      method: 'POST', path: `${base}/:id/reject`, access: 'job.approve', tag, body: rejectBody, response: { schema: approvalSchema },
      summary: 'Reject a request: the job is cancelled for good, or the profile edit dropped',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'approval', params.id);
        return serializeApproval(await rejectRequest(k, principal, params.id, body.reason));
      },
    },
    {
      method: 'POST', path: '/api/v1/jobs/:id/approve', access: 'job.approve', tag: 'jobs', body: approveBody,
      summary: 'Approve an AwaitingApproval job (not by its requester); it moves to AwaitingCSR or Pending',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'job', params.id);
        await approveRequest(k, principal, await approvalIdForJob(k, principal, params.id), body.reason);
        return serializeJob((await loadVisibleJob(knex, params.id, principal, ['job.read', 'job.approve'])).job);
      },
    },
    {
      method: 'POST', path: '/api/v1/jobs/:id/reject', access: 'job.approve', tag: 'jobs', body: rejectBody,
      summary: 'Reject an AwaitingApproval job; it is cancelled and never runs',
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'job', params.id);
        await rejectRequest(k, principal, await approvalIdForJob(k, principal, params.id), body.reason);
        return serializeJob((await loadVisibleJob(knex, params.id, principal, ['job.read', 'job.approve'])).job);
      },
    },
  ];
}
