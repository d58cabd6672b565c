import { runList } from '../../http/list-query.js';
import type { RouteDef } from '../../http/route.js';
import type { JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { cancelJob, loadVisibleJob } from './job-actions.js';
import { jobListSpec, scopeJobs, serializeJob } from './job-model.js';
import { markAuditResource } from '../../http/route.js';

/** /api/v1/jobs: the work queue as operators see it. */
export function jobRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const tag = 'jobs';
  return [
    {
      method: 'GET', path: '/api/v1/jobs', access: 'job.read', tag, summary: 'List jobs (filters, sort, page or cursor)', list: jobListSpec,
      handler: (_ctx, { list, principal }) => runList(() => scopeJobs(knex('jobs'), principal, 'job.read'), jobListSpec, list!, (r: JobRow) => serializeJob(r)),
    },
    {
      method: 'GET', path: '/api/v1/jobs/:id', access: 'job.read', tag, summary: 'Get a job',
      handler: async (ctx, { params, principal }) => {
        markAuditResource(ctx, 'job', params.id);
        return serializeJob((await loadVisibleJob(knex, params.id, principal, ['job.read'])).job);
      },
    },
    {
      method: 'POST', path: '/api/v1/jobs/:id/cancel', access: 'job.cancel', tag, summary: 'Cancel a job that has not started',
      handler: async (ctx, { params, principal }) => {
        markAuditResource(ctx, 'job', params.id);
        return serializeJob(await cancelJob(k, principal, params.id));
      },
    },
  ];
}
