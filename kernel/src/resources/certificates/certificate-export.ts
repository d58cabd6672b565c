import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { Knex } from 'knex';
import { actorOf } from '../../audit/audit-log.js';
import { pemCertificates, pemToDer } from '../../crypto/der.js';
import { appError } from '../../errors.js';
import { markAuditResource, type RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import { loadVisibleCertificate } from './certificate-store.js';

/**
 * Certificate export: PEM (leaf and chain apart) and a PKCS#12 trust bundle.
 * Only certificates ever leave: private keys stay on the agents that made them,
 * so neither format can carry one. Every export is audited with its serial.
 */

interface VersionRow {
  id: string;
  serial_number: string;
  fingerprint_sha256: string;
  not_after: Date;
  pem_chain: string;
}

/** The version to export: the one asked for, else the certificate's current one (newest). */
async function versionToExport(knex: Knex, certificateId: string, versionId: string | undefined): Promise<VersionRow> {
  const q = knex('certificate_versions').where({ certificate_id: certificateId });
  const row = (await (versionId ? q.andWhere({ id: versionId }) : q.orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }])).first()) as VersionRow | undefined;
  if (!row) throw appError('NOT_FOUND', versionId ? `Version ${versionId} of certificate ${certificateId} not found` : `Certificate ${certificateId} has not been issued yet`);
  return row;
}

const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';
const OID_FRIENDLY_NAME = '1.2.840.113549.1.9.20';
/** Java's "trusted for any purpose" bag attribute: without it keytool lists no trusted entries. */
const OID_JAVA_TRUSTED_KEY_USAGE = '2.16.840.1.113894.746875.1.1';
const OID_ANY_EKU = '2.5.29.37.0';
const PKCS12_ITERATIONS = 10_000;

let engineSet = false;
function pkijsEngine(): void {
  if (engineSet) return;
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as never }));
  engineSet = true;
}

/**
 * A certificates-only PKCS#12 trust bundle (no key bag exists to fill): PBES2 with
 * AES-256-CBC and an HMAC-SHA-256 MAC, which openssl 3 and Java keytool both open.
 */
export async function pkcs12TrustBundle(pems: string[], password: string, friendlyName: string): Promise<Buffer> {
  pkijsEngine();
  const pw = Buffer.from(password, 'utf8');
  const bags = pems.map((pem, i) => new pkijs.SafeBag({
    bagId: OID_CERT_BAG,
    bagValue: new pkijs.CertBag({ parsedValue: pkijs.Certificate.fromBER(pemToDer(pem, /CERTIFICATE/)) }),
    bagAttributes: [
      new pkijs.Attribute({ type: OID_FRIENDLY_NAME, values: [new asn1js.BmpString({ value: i === 0 ? friendlyName : `${friendlyName} chain ${i}` })] }),
      new pkijs.Attribute({ type: OID_JAVA_TRUSTED_KEY_USAGE, values: [new asn1js.ObjectIdentifier({ value: OID_ANY_EKU })] }),
    ],
  }));
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0,
      authenticatedSafe: new pkijs.AuthenticatedSafe({ parsedValue: { safeContents: [{ privacyMode: 1, value: new pkijs.SafeContents({ safeBags: bags }) }] } }),
    },
  });
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues({
    safeContents: [{ password: pw, contentEncryptionAlgorithm: { name: 'AES-CBC', length: 256 }, hmacHashAlgorithm: 'SHA-256', iterationCount: PKCS12_ITERATIONS }],
  });
  await pfx.makeInternalValues({ password: pw, iterations: PKCS12_ITERATIONS, pbkdf2HashAlgorithm: 'SHA-256', hmacHashAlgorithm: 'SHA-256' });
  return Buffer.from(pfx.toSchema().toBER(false));
}

const safeFileName = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100);

export function certificateExportRoutes(k: KernelServices, base: string): RouteDef[] {
  const knex = k.db.knex;
  const tag = 'certificates';
  const audit = async (ctx: Parameters<RouteDef['handler']>[0], certificateId: string, action: string, version: VersionRow) => {
    const principal = ctx.state.principal!;
    await k.audit.append({ category: 'lifecycle', ...actorOf(principal), action, resource_type: 'certificate', resource_id: certificateId, details: { serial_number: version.serial_number, version_id: version.id, fingerprint_sha256: version.fingerprint_sha256 } });
  };

  return [
    {
      method: 'GET', path: `${base}/:id/export/pem`, access: 'cert.export', tag,
      summary: 'Export the certificate as PEM: JSON with leaf and chain apart, or ?download=true for a file',
      query: {
        download: { description: 'true: answer the full chain as a .pem file download', enum: ['true', 'false'] },
        version_id: { description: 'Export this version rather than the current one' },
      },
      handler: async (ctx, { params, query, principal }) => {
        markAuditResource(ctx, 'certificate', params.id);
        const cert = await loadVisibleCertificate(knex, params.id, principal, ['cert.export']);
        const version = await versionToExport(knex, cert.id, query.version_id);
        const [leaf, ...chain] = pemCertificates(version.pem_chain);
        if (!leaf) throw appError('CONFLICT', `Version ${version.id} holds no certificate`);
        await audit(ctx, cert.id, 'export_pem', version);
        if (query.download === 'true') {
          ctx.type = 'application/x-pem-file';
          ctx.set('Content-Disposition', `attachment; filename="${safeFileName(cert.common_name)}.pem"`);
          return [leaf, ...chain].join('');
        }
        return {
          certificate_id: cert.id,
          version_id: version.id,
          serial_number: version.serial_number,
          fingerprint_sha256: version.fingerprint_sha256,
          not_after: version.not_after,
          certificate_pem: leaf,
          chain_pem: chain,
          full_chain_pem: [leaf, ...chain].join(''),
        };
      },
    },
    {
      method: 'POST', path: `${base}/:id/export/pkcs12`, access: 'cert.export', tag,
      summary: 'Export the certificate and its chain as a PKCS#12 bundle (certificates only, never a private key)',
      body: {
        type: 'object', additionalProperties: false,
        properties: {
          password: { type: 'string', maxLength: 256, description: 'Protects the bundle; empty when omitted' },
          version_id: { type: 'string', maxLength: 128, description: 'Export this version rather than the current one' },
        },
      },
      response: { contentType: 'application/x-pkcs12', description: 'The .p12 file' },
      handler: async (ctx, { params, body, principal }) => {
        markAuditResource(ctx, 'certificate', params.id);
        const { password = '', version_id: versionId } = (body ?? {}) as { password?: string; version_id?: string };
        const cert = await loadVisibleCertificate(knex, params.id, principal, ['cert.export']);
        const version = await versionToExport(knex, cert.id, versionId);
        const pems = pemCertificates(version.pem_chain);
        if (!pems.length) throw appError('CONFLICT', `Version ${version.id} holds no certificate`);
        const p12 = await pkcs12TrustBundle(pems, password, cert.common_name);
        await audit(ctx, cert.id, 'export_pkcs12', version);
        ctx.type = 'application/x-pkcs12';
        ctx.set('Content-Disposition', `attachment; filename="${safeFileName(cert.common_name)}.p12"`);
        return p12;
      },
    },
  ];
}
