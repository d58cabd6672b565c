import type { Knex } from 'knex';
import { crlUrl } from '../ca/ca-keystore.js';
import { appError } from '../errors.js';
import { markAuditResource, type Ctx, type RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { serializeJob } from '../resources/jobs/job-model.js';
import { serializeCertificate } from '../resources/certificates/certificate-model.js';
import { canonicalSerial } from './leaf-facts.js';
import { crlHeaders, decodeOcspGet, etagMatches, ocspHeaders } from './pki-http.js';
import { MALFORMED, type OcspAnswer } from './ocsp-service.js';
import { REVOCATION_REASONS } from './reasons.js';
import { revocationOf } from './revocation-services.js';
import { bulkRevoke, bulkRevokeBody, bulkRevokeReport, revokeBody, revokeOne, serializeRevocation } from './revoke-requests.js';

function sendCrl(k: KernelServices) {
  return async (ctx: Ctx, { params }: { params: Record<string, string> }) => {
    const state = await revocationOf(k).crl.current(params.issuer_id, params.ca_id);
    if (!state) throw appError('NOT_FOUND', `Issuer ${params.issuer_id} has no${params.ca_id ? ` publishing CA ${params.ca_id}` : ' CA'} whose CRL this server publishes`);
    ctx.set(crlHeaders(state));
    if (etagMatches(ctx.get('if-none-match') || undefined, state.etag)) {
      ctx.status = 304;
      ctx.body = null;
      return;
    }
    ctx.body = state.der;
  };
}

function sendOcsp(ctx: Ctx, answer: OcspAnswer): void {
  ctx.set(ocspHeaders(answer));
  ctx.body = answer.der;
}

/** Revocation: revoke and bulk revoke, CRLs and the OCSP responder. */
export function revocationRoutes(k: KernelServices): RouteDef[] {
  const knex = k.db.knex;
  const rev = () => revocationOf(k);
  return [
    {
      method: 'POST', path: '/api/v1/certificates/:id/revoke', access: 'cert.revoke', tag: 'certificates', body: revokeBody,
      summary: 'Revoke a certificate (every unexpired version) with an RFC 5280 reason; 409 if already revoked',
      response: { description: '{certificate, revocations, job}' },
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'certificate', params.id);
        const out = await revokeOne(k, principal, params.id, body.reason);
        return { certificate: serializeCertificate(out.certificate), revocations: out.revocations, job: serializeJob(out.job) };
      },
    },
    {
      method: 'POST', path: '/api/v1/certificates/bulk-revoke', access: 'cert.revoke', tag: 'certificates', body: bulkRevokeBody,
      summary: 'Revoke every certificate matching the criteria (profile, owner, agent, issuer, team, ids); failures reported per certificate',
      response: { status: 202, description: '{bulk_id, criteria, matched_count, affected_count, status, jobs, failed}' },
      handler: async (ctx, { body, principal }) => {
        const out = await bulkRevoke(k, principal, body);
        markAuditResource(ctx, 'bulk_revocation', out.bulk_id);
        return out;
      },
    },
    {
      method: 'GET', path: '/api/v1/revocations/bulk/:bulk_id', access: 'job.read', tag: 'revocation',
      summary: 'Progress of a bulk revocation: its jobs by status and the failures',
      handler: (_ctx, { params }) => bulkRevokeReport(k, params.bulk_id),
    },
    {
      method: 'GET', path: '/api/v1/crl', access: 'cert.read', tag: 'revocation',
      summary: 'The revocation list as JSON: entries (newest first) and the current CRL of each issuer',
      query: { issuer_id: { description: 'Only this issuer' }, limit: { description: 'Entries to return (1-10000, default 1000)' } },
      handler: async (_ctx, { query }) => {
        const limit = query.limit === undefined ? 1000 : Number(query.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw appError('BAD_QUERY', 'limit must be an integer from 1 to 10000');
        const scoped = (q: Knex.QueryBuilder) => (query.issuer_id ? q.where({ issuer_id: query.issuer_id }) : q);
        const entries = await scoped(knex('certificate_revocations')).orderBy([{ column: 'revoked_at', order: 'desc' }, { column: 'id' }]).limit(limit);
        const [{ n }] = (await scoped(knex('certificate_revocations')).count({ n: '*' })) as { n: string | number }[];
        const crls = await knex('crl_state as s').join('certificate_authorities as ca', 'ca.id', 's.ca_id')
          .modify((q) => { if (query.issuer_id) q.where('s.issuer_id', query.issuer_id); })
          .whereNotNull('s.crl_number').orderBy('s.issuer_id')
          .select('s.issuer_id', 's.ca_id', 's.crl_number', 's.this_update', 's.next_update', 's.entries', 's.etag', 'ca.status as ca_status');
        return {
          version: 2,
          generated_at: new Date().toISOString(),
          total: Number(n),
          entries: entries.map(serializeRevocation),
          // The issuer's URL serves its active CA's CRL; every other CA's is at its own URL (the one its certificates name).
          crls: crls.map(({ ca_status, ...c }: Record<string, unknown>) => ({
            ...c, crl_number: String(c.crl_number),
            url: crlUrl(k.config.publicBaseUrl, String(c.issuer_id), ca_status === 'active' ? undefined : String(c.ca_id)),
          })),
          reasons: REVOCATION_REASONS,
        };
      },
    },
    {
      method: 'GET', path: '/api/v1/crl/:issuer_id', access: 'public', tag: 'revocation',
      summary: 'The DER X.509 CRL of an issuer (application/pkix-crl; ETag, 304)', response: { contentType: 'application/pkix-crl' },
      handler: sendCrl(k),
    },
    {
      method: 'GET', path: '/.well-known/pki/crl/:issuer_id', access: 'public', tag: 'revocation',
      summary: 'The DER X.509 CRL of an issuer: the CRL distribution point in issued certificates', response: { contentType: 'application/pkix-crl' },
      handler: sendCrl(k),
    },
    {
      method: 'GET', path: '/.well-known/pki/crl/:issuer_id/:ca_id', access: 'public', tag: 'revocation',
      summary: 'The DER CRL of one CA of an issuer (a retiring CA keeps publishing for what it signed)', response: { contentType: 'application/pkix-crl' },
      handler: sendCrl(k),
    },
    {
      method: 'POST', path: '/.well-known/pki/ocsp/:issuer_id', access: 'public', tag: 'revocation', rawBody: true, rawBodyTypes: ['application/ocsp-request'],
      summary: 'OCSP responder (RFC 6960), POST form', response: { contentType: 'application/ocsp-response' },
      handler: async (ctx, { params }) => {
        const body = ctx.state.rawBody;
        sendOcsp(ctx, body?.length ? await rev().ocsp.answer(params.issuer_id, body) : MALFORMED());
      },
    },
    {
      method: 'GET', path: '/.well-known/pki/ocsp/:issuer_id/:request', access: 'public', tag: 'revocation',
      summary: 'OCSP responder (RFC 6960), GET form: the DER request base64- and URL-encoded', response: { contentType: 'application/ocsp-response' },
      handler: async (ctx, { params }) => {
        const body = decodeOcspGet(encodeURIComponent(params.request));
        sendOcsp(ctx, body?.length ? await rev().ocsp.answer(params.issuer_id, body) : MALFORMED());
      },
    },
    {
      method: 'GET', path: '/api/v1/ocsp/:issuer_id/:serial', access: 'public', tag: 'revocation',
      summary: 'A signed OCSP response for one serial (hex) of the issuer', response: { contentType: 'application/ocsp-response' },
      handler: async (ctx, { params }) => {
        if (!/^[0-9a-fA-F:]{1,60}$/.test(params.serial)) throw appError('VALIDATION_FAILED', 'serial must be hex');
        const answer = await rev().ocsp.answerSerial(params.issuer_id, canonicalSerial(params.serial));
        if (!answer) throw appError('NOT_FOUND', `Issuer ${params.issuer_id} has no CA this server answers OCSP for`);
        sendOcsp(ctx, answer);
      },
    },
  ];
}

