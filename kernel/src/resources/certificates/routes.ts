import type { Knex } from 'knex';
import { runList, type ListSpec } from '../../http/list-query.js';
import type { Ctx, RouteDef } from '../../http/route.js';
import type { JobRow } from '../../jobs/job-states.js';
import type { KernelServices } from '../../kernel-services.js';
import { jobListSpec, serializeJob } from '../jobs/job-model.js';
import { archiveCertificate, renewCertificate, setCertificateTargets } from './certificate-actions.js';
import { certificateListSpec, scopeCertificates, serializeCertificate, type CertificateRow } from './certificate-model.js';
import { certificateSchema, createCertificateBody, setTargetsBody, updateCertificateBody } from './certificate-schemas.js';
import { loadVisibleCertificate } from './certificate-store.js';
import { TARGET_SUMMARY_FIELDS } from './certificate-targets.js';
import { createCertificate, deleteCertificate, updateCertificate } from './certificate-writes.js';
import { markAuditResource } from '../../http/route.js';
import { certificateExportRoutes } from './certificate-export.js';
import { certificateBulkRoutes } from './certificate-bulk-routes.js';
import { renewalInfoView } from '../../lifecycle/renewal-info.js';

const VERSION_FIELDS = ['id', 'certificate_id', 'serial_number', 'fingerprint_sha256', 'not_before', 'not_after', 'key_algorithm', 'key_size', 'pem_chain', 'csr_pem', 'created_at'] as const;

const versionListSpec: ListSpec = {
  sortable: { created_at: 'created_at', not_after: 'not_after', not_before: 'not_before' },
  defaultSort: '-created_at',
  fields: VERSION_FIELDS,
};

const targetListSpec: ListSpec = {
  sortable: { name: 'name', created_at: 'created_at' },
  defaultSort: 'name',
  fields: TARGET_SUMMARY_FIELDS,
};

type Row = Record<string, unknown> & { id: string };

/** /api/v1/certificates: the managed certificate inventory and its lifecycle actions. */
export function certificateRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const base = '/api/v1/certificates';
  const tag = 'certificates';
  const mark = (ctx: Ctx, id: string) => markAuditResource(ctx, 'certificate', id);

  return [
    {
      method: 'GET', path: base, access: 'cert.read', tag, summary: 'List certificates (filters, sort, page or cursor)', list: certificateListSpec,
      response: { schema: certificateSchema },
      handler: (_ctx, { list, principal }) =>
        runList(() => scopeCertificates(knex('managed_certificates'), principal, 'cert.read'), certificateListSpec, list!, serializeCertificate),
    },
    {
      method: 'GET', path: `${base}/:id`, access: 'cert.read', tag, summary: 'Get a certificate', response: { schema: certificateSchema },
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        const cert = await loadVisibleCertificate(knex, params.id, principal, ['cert.read']);
        return serializeCertificate(cert, { renewal_info: await renewalInfoView(knex, cert) });
      },
    },
    {
      method: 'POST', path: base, access: 'cert.create', tag, summary: 'Create a certificate and queue its issuance',
      body: createCertificateBody, response: { status: 201, schema: certificateSchema },
      handler: async (ctx, { body, principal }) => {
        const { cert } = await createCertificate(k, principal, body);
        mark(ctx, cert.id);
        return serializeCertificate(cert);
      },
    },
    {
      method: 'PUT', path: `${base}/:id`, access: 'cert.edit', tag, summary: 'Edit a certificate (fields not given are kept)',
      body: updateCertificateBody, response: { schema: certificateSchema },
      handler: async (ctx, { params, body, principal }) => {
        mark(ctx, params.id);
        return serializeCertificate(await updateCertificate(k, principal, params.id, body));
      },
    },
    {
      method: 'DELETE', path: `${base}/:id`, access: 'cert.delete', tag, summary: 'Delete a never-issued certificate (issued ones are archived)',
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        await deleteCertificate(k, principal, params.id);
      },
    },
    {
      method: 'POST', path: `${base}/:id/archive`, access: 'cert.delete', tag, summary: 'Archive a certificate and cancel its open jobs',
      response: { schema: certificateSchema },
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        return serializeCertificate(await archiveCertificate(k, principal, params.id));
      },
    },
    {
      method: 'POST', path: `${base}/:id/renew`, access: 'cert.renew', tag, summary: 'Queue a renewal now (an issuance if never issued); for a certificate its client renews (protocol-enrolled), record the request for the client instead',
      response: { status: 202, description: 'The queued job; or, for a certificate its client renews, { certificate_id, renewed_by: "client", requested_at, message } (no job)' },
      handler: async (ctx, { params, principal }) => {
        mark(ctx, params.id);
        const renewal = await renewCertificate(k, principal, params.id);
        return 'job' in renewal ? serializeJob(renewal.job) : renewal.client;
      },
    },
    {
      method: 'GET', path: `${base}/:id/versions`, access: 'cert.read', tag, summary: 'Issued versions of a certificate', list: versionListSpec,
      handler: async (ctx, { params, principal, list }) => {
        mark(ctx, params.id);
        await loadVisibleCertificate(knex, params.id, principal, ['cert.read']);
        return runList(() => knex('certificate_versions').where({ certificate_id: params.id }), versionListSpec, list!, (r: Row) => r);
      },
    },
    {
      method: 'GET', path: `${base}/:id/targets`, access: 'cert.read', tag, summary: 'Deployment targets of a certificate', list: targetListSpec,
      handler: async (ctx, { params, principal, list }) => {
        mark(ctx, params.id);
        await loadVisibleCertificate(knex, params.id, principal, ['cert.read']);
        const mapped = (sub: Knex.QueryBuilder) => { sub.select('target_id').from('certificate_target_mappings').where({ certificate_id: params.id }); };
        return runList(() => knex('targets').select(TARGET_SUMMARY_FIELDS).whereIn('id', mapped), targetListSpec, list!, (r: Row) => r);
      },
    },
    {
      method: 'PUT', path: `${base}/:id/targets`, access: 'cert.edit', tag, summary: 'Replace the deployment targets of a certificate',
      body: setTargetsBody,
      handler: async (ctx, { params, body, principal }) => {
        mark(ctx, params.id);
        await setCertificateTargets(k, principal, params.id, body.target_ids);
        const rows = await knex('targets').select(TARGET_SUMMARY_FIELDS)
          .whereIn('id', (sub: Knex.QueryBuilder) => { sub.select('target_id').from('certificate_target_mappings').where({ certificate_id: params.id }); })
          .orderBy([{ column: 'name' }, { column: 'id' }]);
        return { data: rows };
      },
    },
    {
      method: 'GET', path: `${base}/:id/jobs`, access: 'job.read', tag, summary: 'Jobs of a certificate', list: jobListSpec,
      handler: async (ctx, { params, principal, list }) => {
        mark(ctx, params.id);
        const cert: CertificateRow = await loadVisibleCertificate(knex, params.id, principal, ['job.read']);
        return runList(() => knex('jobs').where({ certificate_id: cert.id }), jobListSpec, list!, (r: JobRow) => serializeJob(r));
      },
    },
    ...certificateExportRoutes(k, base),
    ...certificateBulkRoutes(k),
  ];
}
