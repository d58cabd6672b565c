import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { TestKernel } from '../support/test-kernel.js';
import { issueRequest, makeCsr } from '../ca/ca-support.js';

export type Issued = { certificatePem: string; chainPem: string[]; serial: string; certId: string; versionId: string };

/**
 * Runs openssl (bounded in time) without blocking: the kernel under test runs in
 * this process and must keep answering. Never throws: status, and stdout+stderr.
 */
export function run(args: string[], input?: Buffer | string): Promise<{ status: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', args, { timeout: 20_000, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ status: code, out: `${stdout?.toString() ?? ''}${stderr?.toString() ?? ''}` });
    });
    child.stdin?.end(input);
  });
}

/** Issues a real certificate through the local-ca plugin and records it as a managed certificate with one version. */
export async function issueManaged(t: TestKernel, dir: string, issuerId: string, opts: { cn?: string; notAfter?: string; ownerId?: string; profileId?: string; csr?: string } = {}): Promise<Issued> {
  const cn = opts.cn ?? `r${crypto.randomBytes(4).toString('hex')}.example.test`;
  const csr = opts.csr ?? makeCsr(dir, { cn });
  const certId = `mc-${crypto.randomBytes(6).toString('hex')}`;
  const r = (await t.kernel.pluginHost.call('local-ca', issuerId, 'issue', issueRequest(csr, { certificateId: certId, commonName: cn, ...(opts.notAfter ? { notAfter: opts.notAfter } : {}) }) as never)) as unknown as { status: string; certificatePem: string; chainPem: string[]; reason?: string };
  if (r.status !== 'issued') throw new Error(`issue failed: ${JSON.stringify(r)}`);
  const x = new crypto.X509Certificate(r.certificatePem);
  const serial = x.serialNumber.toLowerCase();
  const versionId = `cv-${crypto.randomBytes(6).toString('hex')}`;
  const knex = t.kernel.db.knex;
  await knex('managed_certificates').insert({
    id: certId, name: cn, common_name: cn, status: 'Active', issuer_id: issuerId, owner_id: opts.ownerId ?? null, profile_id: opts.profileId ?? null,
    serial_number: serial, fingerprint_sha256: x.fingerprint256.replace(/:/g, '').toLowerCase(), not_before: new Date(x.validFrom), expires_at: new Date(x.validTo),
  });
  await knex('certificate_versions').insert({
    id: versionId, certificate_id: certId, serial_number: serial, fingerprint_sha256: x.fingerprint256.replace(/:/g, '').toLowerCase(),
    not_before: new Date(x.validFrom), not_after: new Date(x.validTo), pem_chain: r.certificatePem + r.chainPem.join(''),
  });
  return { certificatePem: r.certificatePem, chainPem: r.chainPem, serial, certId, versionId };
}

/**
 * Many managed certificates at once for scale tests: rows only, each with its own
 * random serial and the PEM of one real leaf of the issuer (so the signing CA is found
 * from its AKI). Inserted in batches.
 */
export async function insertMany(t: TestKernel, issuerId: string, template: Issued, n: number, prefix: string): Promise<string[]> {
  const knex = t.kernel.db.knex;
  const ids: string[] = [];
  const notAfter = new Date(Date.now() + 30 * 86_400_000);
  for (let i = 0; i < n; i += 1000) {
    const certs = [];
    const versions = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const id = `${prefix}-${String(j).padStart(6, '0')}`;
      const serial = `7${crypto.randomBytes(15).toString('hex')}`;
      ids.push(id);
      certs.push({ id, name: id, common_name: `${id}.example.test`, status: 'Active', issuer_id: issuerId, serial_number: serial, fingerprint_sha256: 'x', not_before: new Date(), expires_at: notAfter });
      versions.push({ id: `cv-${id}`, certificate_id: id, serial_number: serial, fingerprint_sha256: 'x', not_before: new Date(Date.now() - 60_000), not_after: notAfter, pem_chain: template.certificatePem });
    }
    await knex('managed_certificates').insert(certs);
    await knex('certificate_versions').insert(versions);
  }
  return ids;
}

export function write(dir: string, name: string, data: string | Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  return file;
}

/** GET or POST over HTTPS to the test kernel, raw bytes back (the ApiClient speaks JSON). */
export async function raw(t: TestKernel, method: 'GET' | 'POST', pathname: string, opts: { body?: Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const https = await import('node:https');
  const ca = fs.readFileSync(path.join(t.dataDir, 'tls', 'server.crt'), 'utf8');
  const url = new URL(pathname, t.kernel.url);
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers: { ...(opts.body ? { 'content-type': 'application/ocsp-request', 'content-length': String(opts.body.length) } : {}), ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
